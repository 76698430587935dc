#!/bin/bash
# The guest side of the systemd VM test (run.sh), run at each boot by
# hil-test.service with its output on the serial console. Boot 1 installs
# the package and tests the service under systemd; then it asks the host to
# cut the power while blackbox records. Boot 2 checks what a power cut must
# not break and prints the summary of both. Results are kept on /data (the
# test's own, synced before the cut).
set -u
R=/data/hil
mkdir -p "$R"
results="$R/results"

ok() { echo "ok   $1: ${2:-}" | tee -a "$results"; }
fail() { echo "FAIL $1: ${2:-}" | tee -a "$results"; }
# wait_for SECONDS COMMAND...: until the command succeeds.
wait_for() {
  local end=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -ge "$end" ] && return 1
    sleep 0.5
  done
}
prop() { systemctl show -p "$1" --value blackbox; }
active() { systemctl is-active --quiet blackbox; }
status() { curl -s --cacert /data/blackbox/tls/cert.pem --max-time 10 -u "blackbox:$PW" https://127.0.0.1/api/status; }
restarted_since() { [ "$(prop NRestarts)" -gt "$1" ] && active; }
watchdog_kills() { journalctl -b -u blackbox --no-pager | grep -c 'Watchdog timeout' || true; }
uptime_s() { cut -d ' ' -f 1 /proc/uptime; }
# watchdog_after T: seconds from uptime T to systemd's last watchdog kill, by
# systemd's own clock (its journal), whatever the poll here makes of it.
watchdog_after() {
  journalctl -b -u blackbox --no-pager -o short-monotonic | grep 'Watchdog timeout' | tail -n 1 |
    sed -E 's/^\[ *([0-9.]+)\].*/\1/' | awk -v t0="$1" '{printf "%.1f", $1 - t0}'
}
# within_limit SECONDS: the watchdog's 10 s and the 5 s the issue allows.
within_limit() { awk -v s="$1" 'BEGIN { exit !(s != "" && s <= 15) }'; }

if [ ! -e "$R/phase" ]; then
  echo "hil: boot 1: install, the service, the watchdog, the sandbox"
  wait_for 60 test -e /dev/video0 || fail "vivid" "no /dev/video0"

  # apt install brings the service to active, which for Type=notify is READY.
  if out=$(cd /payload && apt-get install -y ./blackbox_*_amd64.deb 2>&1); then
    ok "apt install ./blackbox_*.deb" "$(echo "$out" | grep -c Setting) packages set up"
  else
    fail "apt install ./blackbox_*.deb" "$(echo "$out" | tail -n 5)"
  fi
  if wait_for 180 active; then
    start=$(prop ExecMainStartTimestampMonotonic)
    ready=$(prop ActiveEnterTimestampMonotonic)
    ok "active with READY" "READY $(( (ready - start) / 1000 )) ms after start; $(prop StatusText)"
  else
    fail "active with READY" "$(systemctl status blackbox --no-pager 2>&1 | tail -n 8)"
  fi

  PW=$(sed -n 's/^blackbox dashcam password: //p' /boot/firmware/blackbox-password.txt 2>/dev/null)
  perms=$(stat -c '%a %U' /data/blackbox/password 2>/dev/null)
  if [ -n "$PW" ] && [ "$perms" = "600 blackbox" ]; then
    ok "a unique password at install" "shown on the boot partition; hash file $perms"
  else
    fail "a unique password at install" "password '${PW:0:3}...' file '$perms'"
  fi

  # HTTPS on 443 with the device's own certificate (curl verifies it), its
  # fingerprint beside the password; port 80 answers /healthz and sends the
  # rest to HTTPS.
  served=$(sed '/-----/d' /data/blackbox/tls/cert.pem | base64 -d | sha256sum | cut -c1-64 |
    tr a-f A-F | sed 's/../&:/g; s/:$//')
  code=$(curl -s --cacert /data/blackbox/tls/cert.pem -o /dev/null -w '%{http_code}' --max-time 10 https://127.0.0.1/healthz)
  if [ "$code" = 200 ] && grep -qF "$served" /boot/firmware/blackbox-password.txt; then
    ok "HTTPS with the device's own certificate" "verified by curl; fingerprint ${served:0:11}... beside the password"
  else
    fail "HTTPS with the device's own certificate" "HTTP $code; fingerprint $served; note: $(head -c 300 /boot/firmware/blackbox-password.txt | tr "\n" " ")"
  fi
  plain=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 http://127.0.0.1/healthz)
  moved=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' --max-time 10 http://127.0.0.1/recordings)
  if [ "$plain" = 200 ] && [ "$moved" = "308 https://127.0.0.1/recordings" ]; then
    ok "port 80: /healthz, and a redirect for the rest" "$moved"
  else
    fail "port 80: /healthz, and a redirect for the rest" "/healthz $plain; /recordings $moved"
  fi
  # The capability to bind 80 and 443, in blackbox alone: not ambient, so
  # nothing it starts inherits it.
  caps=$(grep -E '^Cap(Eff|Amb)' "/proc/$(prop MainPID)/status" | tr -s '\t ' ' ' | tr '\n' ' ')
  if [ "$caps" = "CapEff: 0000000000000400 CapAmb: 0000000000000000 " ]; then
    ok "CAP_NET_BIND_SERVICE only, not passed on" "$caps"
  else
    fail "CAP_NET_BIND_SERVICE only, not passed on" "$caps"
  fi

  code=$(curl -s --cacert /data/blackbox/tls/cert.pem -o /dev/null -w '%{http_code}' --max-time 10 https://127.0.0.1/api/status)
  if [ "$code" = 401 ]; then
    ok "401 without the password"
  else
    fail "401 without the password" "HTTP $code"
  fi
  if wait_for 120 sh -c "curl -s --cacert /data/blackbox/tls/cert.pem --max-time 10 -u 'blackbox:$PW' https://127.0.0.1/api/status | grep -q '\"state\":\"streaming\"'"; then
    curl -s --cacert /data/blackbox/tls/cert.pem --max-time 5 -u "blackbox:$PW" https://127.0.0.1/video_feed -o /tmp/feed
    n=$(grep -c 'Content-Type: image/jpeg' /tmp/feed)
    kind=$(status | grep -o '"kind":"[a-z0-9]*"' | head -n 1)
    if [ "$n" -ge 3 ] && [ "$kind" = '"kind":"v4l2"' ]; then
      ok "frames from vivid with the password" "$n parts in 5 s from $kind"
    else
      fail "frames from vivid with the password" "$n parts, $kind"
    fi
  else
    fail "frames from vivid with the password" "not streaming: $(status | head -c 400)"
  fi

  # A stopped process feeds no watchdog: systemd kills and restarts it.
  n0=$(prop NRestarts)
  w0=$(watchdog_kills)
  t0=$SECONDS
  u0=$(uptime_s)
  systemctl kill -s SIGSTOP blackbox
  if wait_for 120 restarted_since "$n0"; then
    took=$((SECONDS - t0))
    killed=$(watchdog_after "$u0")
    if [ "$(watchdog_kills)" -gt "$w0" ] && within_limit "$killed"; then
      ok "SIGSTOP: a watchdog restart" "killed by the watchdog ${killed} s after SIGSTOP (WatchdogSec 10 s); NRestarts $n0 -> $(prop NRestarts), active again after $took s"
    else
      fail "SIGSTOP: a watchdog restart" "killed after ${killed:-?} s, active after $took s; $(journalctl -b -u blackbox --no-pager | grep -i watchdog | tail -n 2)"
    fi
  else
    fail "SIGSTOP: a watchdog restart" "NRestarts still $(prop NRestarts)"
  fi

  # A wedged recorder, in the build with test-only fault injection.
  install -d /etc/systemd/system/blackbox.service.d
  printf '%s\n' '[Service]' 'ExecStart=' \
    'ExecStart=/payload/blackbox-faults run --config /etc/blackbox/blackbox.toml' \
    'Environment=BLACKBOX_FAULTS=/run/hil-faults' >/etc/systemd/system/blackbox.service.d/faults.conf
  install -m 0644 /dev/null /run/hil-faults
  systemctl daemon-reload
  systemctl restart blackbox
  if wait_for 180 active; then
    n0=$(prop NRestarts)
    w0=$(watchdog_kills)
    t0=$SECONDS
    u0=$(uptime_s)
    echo "wedge_recorder = 1" >/run/hil-faults
    if wait_for 120 sh -c "[ \$(systemctl show -p NRestarts --value blackbox) -gt $n0 ]"; then
      took=$((SECONDS - t0))
      : >/run/hil-faults
      # Stalled after twice the 1 s sync interval and a second, then the
      # watchdog's 10 s.
      killed=$(watchdog_after "$u0")
      why=$(journalctl -b -u blackbox --no-pager | grep -o 'the recorder has made no progress.*' | tail -n 1 || true)
      if [ "$(watchdog_kills)" -gt "$w0" ] && within_limit "$killed"; then
        ok "a wedged recorder: a watchdog restart" "killed by the watchdog ${killed} s after the wedge; NRestarts grew after $took s; ${why%% (*}"
      else
        fail "a wedged recorder: a watchdog restart" "killed after ${killed:-?} s (NRestarts grew after $took s); ${why:-no stall logged}"
      fi
    else
      : >/run/hil-faults
      fail "a wedged recorder: a watchdog restart" "NRestarts still $(prop NRestarts); $(prop StatusText)"
    fi
  else
    fail "a wedged recorder: a watchdog restart" "the fault build did not start"
  fi
  rm -f /etc/systemd/system/blackbox.service.d/faults.conf
  systemctl daemon-reload
  systemctl restart blackbox
  wait_for 180 active

  # The sandbox, from inside the service's own mount namespace.
  pid=$(prop MainPID)
  denied=0
  for p in /etc/hil-forbidden /usr/hil-forbidden /var/hil-forbidden /root/hil-forbidden; do
    if nsenter -t "$pid" -m -- touch "$p" 2>/dev/null; then denied=1; echo "hil: $p was writable"; fi
    rm -f "$p"
  done
  if [ "$denied" = 0 ] && nsenter -t "$pid" -m -- touch /data/blackbox/hil-allowed; then
    ok "writes outside /data fail inside the service" "/etc, /usr, /var, /root read-only; /data writable"
  else
    fail "writes outside /data fail inside the service" "see above"
  fi
  exposure=$(systemd-analyze security blackbox --no-pager 2>/dev/null | tail -n 1)
  ok "systemd-analyze security" "$exposure"

  # Recording, then the power cut.
  if wait_for 120 sh -c "curl -s --cacert /data/blackbox/tls/cert.pem --max-time 10 -u 'blackbox:$PW' https://127.0.0.1/api/status | grep -Eq '\"segment_frames\":([5-9][0-9]|[0-9]{3,})'"; then
    ok "recording before the power cut" "$(find /data/blackbox/recordings -name '*.part' | wc -l) segment(s) open"
  else
    fail "recording before the power cut" "$(status | head -c 300)"
  fi
  echo "$PW" >"$R/pw"
  echo 2 >"$R/phase"
  sync
  echo "hil: cut the power now"
  sleep 600
  exit 0
fi

echo "hil: boot 2: after the power cut"
PW=$(cat "$R/pw")
fsck=$(journalctl -b --no-pager | grep -E 'systemd-fsck\[[0-9]+\]: data: ' | tail -n 1)
if echo "$fsck" | grep -Eq 'data: (clean|recovering journal)'; then
  ok "fsck of /data at boot" "${fsck#*]: }"
else
  fail "fsck of /data at boot" "${fsck:-$(journalctl -b --no-pager | grep -i fsck | tail -n 3)}"
fi
if wait_for 180 active; then
  rec=$(journalctl -b -u blackbox --no-pager | grep -E 'recovery: .* recovered' | head -n 1)
  file=$(echo "$rec" | grep -Eo '/data/blackbox/recordings/[^ ]+\.mkv\.part' | sed 's/\.part$//')
  if [ -n "$file" ] && verify=$(blackbox verify "$file"); then
    ok "the interrupted segment recovered" "$(echo "$verify" | grep -E '^(frames|status)' | tr -s ' ' | paste -sd ';')"
  else
    fail "the interrupted segment recovered" "${rec:-no recovery in the journal}; ${verify:-}"
  fi
  if wait_for 120 sh -c "curl -s --cacert /data/blackbox/tls/cert.pem --max-time 10 -u 'blackbox:$PW' https://127.0.0.1/api/status | grep -Eq '\"frames_written\":[1-9]'"; then
    ok "recording again after the power cut" "$(status | grep -o '"segment":"[^"]*"')"
  else
    fail "recording again after the power cut" "$(status | head -c 300)"
  fi
else
  fail "the service after the power cut" "$(systemctl status blackbox --no-pager 2>&1 | tail -n 8)"
fi
# Removing the package stops the service and keeps the configuration;
# purging removes that, the password and the TLS key; the recordings stay
# with the owner.
recs() { find /data/blackbox/recordings -name '*.mkv' | wc -l; }
if out=$(apt-get remove -y blackbox 2>&1) && ! systemctl is-active --quiet blackbox &&
  [ ! -e /usr/bin/blackbox ] && [ -f /etc/blackbox/blackbox.toml ] && [ "$(recs)" -gt 0 ]; then
  ok "apt remove" "stopped ($(systemctl is-active blackbox)); config kept; $(recs) recordings kept"
else
  fail "apt remove" "$(systemctl is-active blackbox); $(ls /etc/blackbox 2>&1); $(echo "$out" | tail -n 3)"
fi
if out=$(apt-get purge -y blackbox 2>&1) && [ ! -e /etc/blackbox ] &&
  [ ! -e /data/blackbox/password ] && [ ! -e /data/blackbox/tls ] && [ "$(recs)" -gt 0 ]; then
  ok "apt purge" "config, password and TLS key gone; $(recs) recordings kept"
else
  fail "apt purge" "$(ls -d /etc/blackbox /data/blackbox/password /data/blackbox/tls 2>&1); $(recs) recordings; $(echo "$out" | tail -n 3)"
fi

passed=$(grep -c '^ok ' "$results")
failed=$(grep -c '^FAIL ' "$results")
echo "hil: results of both boots:"
cat "$results"
echo "$passed passed, $failed failed"
sync
poweroff -f
