//! The one protobuf body the server has to read: kubectl sends `SelfSubjectAccessReview`
//! (for `kubectl auth can-i`) as a Kubernetes protobuf envelope (`k8s\0` + `Unknown`).
//! A minimal wire-format reader, enough for its string fields.

use serde_json::{Value, json};

/// Reads fields `(number, bytes)` of length-delimited type; skips the others.
fn fields(mut b: &[u8]) -> Option<Vec<(u64, &[u8])>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let (key, rest) = varint(b)?;
        b = rest;
        match key & 7 {
            0 => b = varint(b)?.1,
            1 => b = b.get(8..)?,
            2 => {
                let (len, rest) = varint(b)?;
                let len = usize::try_from(len).ok()?;
                out.push((key >> 3, rest.get(..len)?));
                b = rest.get(len..)?;
            }
            5 => b = b.get(4..)?,
            _ => return None,
        }
    }
    Some(out)
}

fn varint(b: &[u8]) -> Option<(u64, &[u8])> {
    let mut v = 0u64;
    for (i, byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, &b[i + 1..]));
        }
    }
    None
}

fn field(b: &[u8], n: u64) -> Option<&[u8]> {
    fields(b)?.into_iter().find(|(k, _)| *k == n).map(|(_, v)| v)
}

/// The JSON form of a protobuf `SelfSubjectAccessReview` (spec.resourceAttributes only).
pub fn access_review(body: &[u8]) -> Option<Value> {
    let unknown = body.strip_prefix(b"k8s\0")?;
    let raw = field(unknown, 2)?;
    let spec = field(raw, 2)?;
    let attrs = field(spec, 1)?;
    let s = |n: u64| field(attrs, n).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default();
    Some(json!({"spec": {"resourceAttributes": {
        "namespace": s(1), "verb": s(2), "group": s(3), "version": s(4), "resource": s(5), "subresource": s(6), "name": s(7)}}}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ld(n: u64, v: &[u8]) -> Vec<u8> {
        let mut out = vec![((n << 3) | 2) as u8, v.len() as u8];
        out.extend_from_slice(v);
        out
    }

    #[test]
    fn decodes_resource_attributes() {
        let attrs =
            [ld(1, b"default"), ld(2, b"patch"), ld(3, b"stable.example.com"), ld(5, b"databases"), ld(6, b"status")]
                .concat();
        let raw = [ld(1, b"meta"), ld(2, &ld(1, &attrs))].concat();
        let body = [b"k8s\0".to_vec(), ld(1, b"typemeta"), ld(2, &raw)].concat();
        let v = access_review(&body).expect("decodes");
        assert_eq!(v["spec"]["resourceAttributes"]["verb"], "patch");
        assert_eq!(v["spec"]["resourceAttributes"]["subresource"], "status");
        assert_eq!(v["spec"]["resourceAttributes"]["namespace"], "default");
    }
}
