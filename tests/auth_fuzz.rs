//! The `auth_extract` fuzz check on stable: every file of `fuzz/corpus/auth_extract/` (and of
//! `fuzz/regressions/auth_extract/`, when there are findings), then a fixed number of
//! deterministic mutations of them (byte flips, splices and insertions of the dictionary's
//! tokens), so a change to the extraction code meets the properties even without the fuzzer.

#[path = "../fuzz/checks/auth_extract.rs"]
mod auth_extract;

use std::path::Path;

fn files(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect()
}

#[test]
fn corpus_and_regressions() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let corpus = files(&root.join("corpus/auth_extract"));
    assert!(
        corpus.len() >= 5,
        "fuzz/corpus/auth_extract/ is (nearly) empty"
    );
    for input in corpus
        .iter()
        .chain(&files(&root.join("regressions/auth_extract")))
    {
        auth_extract::check(input);
    }
}

#[test]
fn mutations() {
    const PIECES: &[&[u8]] = &[
        b"Authorization: ",
        b"Bearer ",
        b"bearer\t",
        b"Cookie: ",
        b"pushcore_token=",
        b"a=",
        b"; ",
        b";",
        b"\"",
        b"=",
        b" ",
        b"\t",
        b"token=",
        b"&token=",
        b"?",
        b"%2E",
        b"%",
        b"\r\n",
        b"\xff",
        b"\xc3\xa9",
    ];
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/auth_extract");
    let seeds = files(&root);
    assert!(!seeds.is_empty());
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let mut input = seeds[(next() as usize) % seeds.len()].clone();
        for _ in 0..1 + next() % 4 {
            let at = if input.is_empty() {
                0
            } else {
                (next() as usize) % (input.len() + 1)
            };
            match next() % 4 {
                0 if at < input.len() => input[at] ^= 1 << (next() % 8),
                1 if at < input.len() => {
                    input.remove(at);
                }
                2 => {
                    let piece = PIECES[(next() as usize) % PIECES.len()];
                    input.splice(at..at, piece.iter().copied());
                }
                _ => {
                    let other = &seeds[(next() as usize) % seeds.len()];
                    let from = (next() as usize) % (other.len() + 1);
                    input.truncate(at);
                    input.extend_from_slice(&other[from..]);
                }
            }
        }
        auth_extract::check(&input);
    }
}
