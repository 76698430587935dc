//! `Host`, `Origin` and `Referer` headers: never a panic; a request is never
//! "the page itself" unless it names exactly its own host.
#![no_main]

use blackbox::auth::origin::{self, Hosts, Source};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\n');
    let (host, named, referer) = (parts.next(), parts.next(), parts.next());
    let hosts = Hosts::new(&["dashcam.example".to_string()]);
    if let Some(h) = host {
        let _ = hosts.allows(h);
    }
    let s = origin::source(host, named, referer);
    if s == Source::Same {
        let h = host.unwrap_or_default().trim().to_ascii_lowercase();
        let n = named.or(referer).unwrap_or_default().trim().to_ascii_lowercase();
        assert!(n.contains(&h), "{host:?} {named:?} {referer:?}");
    }
});
