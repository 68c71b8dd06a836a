//! W3C trace context for the events a command writes.

use rand::RngCore;

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Version 00 with a non-zero trace id and parent id.
fn is_valid(traceparent: &str) -> bool {
    matches!(traceparent.split('-').collect::<Vec<_>>().as_slice(),
        [version, trace, parent, flags] if *version == "00" && is_lower_hex(trace, 32) && is_lower_hex(parent, 16)
            && is_lower_hex(flags, 2) && trace.bytes().any(|b| b != b'0') && parent.bytes().any(|b| b != b'0'))
}

/// The caller's trace continued with a new span id, or a new trace when the caller sent none
/// (or an invalid one).
pub fn continue_trace(incoming: Option<&str>) -> String {
    let span = random_hex(8);
    match incoming.map(str::trim).filter(|tp| is_valid(tp)).map(|tp| tp.split('-').collect::<Vec<_>>()) {
        Some(parts) => format!("00-{}-{span}-{}", parts[1], parts[3]),
        None => format!("00-{}-{span}-01", random_hex(16)),
    }
}

/// `traceparent` itself when it is valid, else a new trace: every event carries one.
pub fn valid_or_new(traceparent: &str) -> String {
    if is_valid(traceparent) { traceparent.to_owned() } else { continue_trace(None) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_keeps_its_trace_id_and_gets_a_new_span() {
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let out = continue_trace(Some(incoming));
        assert!(out.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "{out}");
        assert!(out.ends_with("-01"));
        assert_ne!(out, incoming);
    }

    #[test]
    fn an_invalid_traceparent_starts_a_new_trace() {
        for bad in ["", "garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "01-xyz-1-01"] {
            let out = continue_trace(Some(bad));
            let parts: Vec<_> = out.split('-').collect();
            assert_eq!(parts.len(), 4, "{out}");
            assert!(is_lower_hex(parts[1], 32) && is_lower_hex(parts[2], 16), "{out}");
        }
    }

    #[test]
    fn an_empty_traceparent_is_replaced_and_a_valid_one_kept() {
        let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(valid_or_new(valid), valid);
        assert!(is_valid(&valid_or_new("")));
    }
}
