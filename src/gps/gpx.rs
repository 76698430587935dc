//! GPX 1.1 out of recorded fixes: one track, a track segment per stretch
//! without a gap (one per recording file, or more where the fix was lost).
//! Speed and heading, which GPX 1.1 has no element for, go into Garmin's
//! TrackPointExtension (v2), which mapping tools and gpsbabel read.

use std::fmt::Write;

use crate::gps::Fix;

const HEAD: &str = concat!(
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
    "<gpx version=\"1.1\" creator=\"blackbox\" ",
    "xmlns=\"http://www.topografix.com/GPX/1/1\" ",
    "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" ",
    "xmlns:gpxtpx=\"http://www.garmin.com/xmlschemas/TrackPointExtension/v2\" ",
    "xsi:schemaLocation=\"http://www.topografix.com/GPX/1/1 http://www.topografix.com/GPX/1/1/gpx.xsd\">\n"
);

/// Escapes text for XML content and attributes.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' => {}
            c => out.push(c),
        }
    }
    out
}

/// A GPX document named `name` with one track of `segments`.
pub fn document(name: &str, segments: &[Vec<Fix>]) -> String {
    let mut out = String::from(HEAD);
    let _ = writeln!(out, "  <metadata><name>{}</name></metadata>", escape(name));
    let _ = writeln!(out, "  <trk>\n    <name>{}</name>", escape(name));
    for seg in segments.iter().filter(|s| !s.is_empty()) {
        out.push_str("    <trkseg>\n");
        for f in seg {
            point(&mut out, f);
        }
        out.push_str("    </trkseg>\n");
    }
    out.push_str("  </trk>\n</gpx>\n");
    out
}

fn point(out: &mut String, f: &Fix) {
    let _ = write!(
        out,
        "      <trkpt lat=\"{:.9}\" lon=\"{:.9}\">",
        f.lat, f.lon
    );
    if let Some(alt) = f.alt {
        let _ = write!(out, "<ele>{alt:.2}</ele>");
    }
    if let Some(t) = &f.time {
        let _ = write!(out, "<time>{}</time>", escape(t));
    }
    let _ = write!(out, "<fix>{}</fix>", if f.mode >= 3 { "3d" } else { "2d" });
    if let Some(s) = f.sats {
        let _ = write!(out, "<sat>{s}</sat>");
    }
    if f.speed.is_some() || f.track.is_some() {
        out.push_str("<extensions><gpxtpx:TrackPointExtension>");
        if let Some(s) = f.speed {
            let _ = write!(out, "<gpxtpx:speed>{s:.3}</gpxtpx:speed>");
        }
        if let Some(c) = f.track {
            let _ = write!(out, "<gpxtpx:course>{c:.2}</gpxtpx:course>");
        }
        out.push_str("</gpxtpx:TrackPointExtension></extensions>");
    }
    out.push_str("</trkpt>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_with_two_segments() {
        let f = Fix {
            time: Some("2026-12-05T20:00:02.000Z".into()),
            mode: 3,
            lat: 52.5020909,
            lon: -13.4109053,
            alt: Some(34.5),
            speed: Some(10.289),
            track: Some(90.0),
            eph: None,
            epv: None,
            sats: Some(8),
        };
        let mut g = f.clone();
        g.mode = 2;
        g.alt = None;
        g.speed = None;
        g.track = None;
        let doc = document("a <b> & \"c\"", &[vec![f], vec![], vec![g]]);
        assert!(doc.contains("<name>a &lt;b&gt; &amp; &quot;c&quot;</name>"));
        assert_eq!(doc.matches("<trkseg>").count(), 2);
        assert!(doc.contains(
            "<trkpt lat=\"52.502090900\" lon=\"-13.410905300\"><ele>34.50</ele><time>2026-12-05T20:00:02.000Z</time><fix>3d</fix><sat>8</sat><extensions><gpxtpx:TrackPointExtension><gpxtpx:speed>10.289</gpxtpx:speed><gpxtpx:course>90.00</gpxtpx:course></gpxtpx:TrackPointExtension></extensions></trkpt>"
        ));
        assert!(doc.contains("<fix>2d</fix><sat>8</sat></trkpt>"));
    }
}
