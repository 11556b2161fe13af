//! The OFF invariants on what is stored: every block has the block size, no plaintext name or content
//! appears in any block, every block looks uniformly random, and no pair or triple of stored blocks XORs
//! to anything with structure.

mod common;

use common::{chi_square, Env, CHI_SQUARE_LIMIT};

fn corpus(env: &Env) -> Vec<(String, String)> {
    let dir = env.path("corpus");
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = Vec::new();
    for i in 0..12 {
        let name = format!("secret-plan-{i}.txt");
        let mut text = String::new();
        let mut n = 0;
        while text.len() < 3000 + i * 2500 {
            text.push_str(&format!(
                "Line {n} of the confidential memo number {i}: meet at the old mill. "
            ));
            n += 1;
        }
        std::fs::write(dir.join(&name), &text).unwrap();
        files.push((name, text));
    }
    files
}

fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

#[test]
fn stored_blocks_are_noise() {
    let env = Env::new(Some("4K"));
    let files = corpus(&env);
    env.put(&env.path("corpus"));
    let blocks: Vec<Vec<u8>> = env
        .block_files()
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert!(blocks.len() > 40, "only {} blocks", blocks.len());

    let needles: Vec<&[u8]> = files
        .iter()
        .flat_map(|(name, text)| [name.as_bytes(), &text.as_bytes()[..24]])
        .chain([
            b"confidential memo".as_slice(),
            b"corpus".as_slice(),
            b"old mill".as_slice(),
        ])
        .collect();
    for (i, b) in blocks.iter().enumerate() {
        assert_eq!(b.len(), 4096, "block {i} has the wrong size");
        let chi = chi_square(b);
        assert!(
            chi < CHI_SQUARE_LIMIT,
            "block {i} is not uniform: chi-square {chi:.0}"
        );
        for n in &needles {
            assert!(
                !b.windows(n.len()).any(|w| w == *n),
                "block {i} contains {:?}",
                String::from_utf8_lossy(n)
            );
        }
    }
    // Structured text scores in the tens of thousands; check the test can tell.
    assert!(chi_square(&files[11].1.as_bytes()[..4096]) > 10.0 * CHI_SQUARE_LIMIT);

    for i in 0..blocks.len() {
        for j in i + 1..blocks.len() {
            let x = xor(&blocks[i], &blocks[j]);
            let chi = chi_square(&x);
            assert!(
                chi < CHI_SQUARE_LIMIT,
                "blocks {i} ^ {j} show structure: chi-square {chi:.0}"
            );
        }
    }
    let sample = &blocks[..blocks.len().min(36)];
    for i in 0..sample.len() {
        for j in i + 1..sample.len() {
            let ij = xor(&sample[i], &sample[j]);
            for (k, c) in sample.iter().enumerate().skip(j + 1) {
                let chi = chi_square(&xor(&ij, c));
                assert!(
                    chi < CHI_SQUARE_LIMIT,
                    "blocks {i} ^ {j} ^ {k} show structure: chi-square {chi:.0}"
                );
            }
        }
    }
}

#[test]
fn randomizers_are_reused_and_sets_never_repeat() {
    let env = Env::new(Some("4K"));
    std::fs::write(env.path("big"), common::pseudo_random(2 << 20, 5)).unwrap();
    env.put(&env.path("big"));
    let stats: serde_json::Value = serde_json::from_str(&env.ok(&["repo", "stats", "--json"])).unwrap();
    let data = stats["data_blocks"].as_u64().unwrap();
    let random = stats["random_blocks"].as_u64().unwrap();
    assert_eq!(data, 512);
    // Fresh random blocks only while the pool is small: a few for the whole file.
    assert!(
        random <= 16,
        "{random} fresh random blocks for {data} data blocks"
    );
    // At 4 KiB blocks a tuple's ~117 descriptor bytes cost ~3%; the fresh random blocks ~2%.
    assert!(stats["overhead"].as_f64().unwrap() < 0.08, "{stats}");
    assert!(stats["reuse"].as_f64().unwrap() > 2.5, "{stats}");
}
