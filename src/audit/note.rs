//! Signed notes and checkpoints: the C2SP `signed-note` format with Ed25519 signatures
//! (the format of Go's `golang.org/x/mod/sumdb/note`), carrying C2SP `tlog-checkpoint`
//! bodies (spec/audit.md "Checkpoints").
//!
//! A note is its text (each line ending in a newline), a blank line, and signature lines
//! `— <key name> <base64(4-byte key id || 64-byte signature)>`. The key id is the first
//! four bytes of `SHA-256(key name || 0x0A || 0x01 || public key)`; the verifier key is
//! written `<name>+<key id, 8 hex>+<base64(0x01 || public key)>` and the signer key (our key
//! file) `PRIVATE+KEY+<name>+<key id>+<base64(0x01 || seed)>`, both as Go writes them.

use super::merkle::Hash;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// The signature algorithm byte of Ed25519 in signed notes.
const ALG_ED25519: u8 = 0x01;
/// The em dash and space that open a signature line.
const SIG_PREFIX: &str = "\u{2014} ";

/// Why a key, a note or a checkpoint is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("malformed key: {0}")]
    MalformedKey(String),
    #[error("malformed note: {0}")]
    MalformedNote(String),
    #[error("the note has no signature by {name}+{key_id:08x}")]
    NoSignatureByKey { name: String, key_id: u32 },
    #[error("the signature by {0} does not verify")]
    BadSignature(String),
    #[error("malformed checkpoint: {0}")]
    MalformedCheckpoint(String),
}

/// A key name is non-empty and holds no space, no `+` and no newline (C2SP signed-note).
fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.contains(['+', ' ', '\n', '\t', '\r']) {
        return Err(NoteError::MalformedKey(format!(
            "a key name must be non-empty, without spaces or '+': {name:?}"
        )));
    }
    Ok(())
}

fn key_id(name: &str, public: &VerifyingKey) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ALG_ED25519]);
    h.update(public.as_bytes());
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// The signing side: a key name and an Ed25519 key. `Debug` never shows the key.
pub struct NoteSigner {
    name: String,
    id: u32,
    key: SigningKey,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.id))
            .finish_non_exhaustive()
    }
}

impl NoteSigner {
    /// A new random key for `name`.
    pub fn generate(name: &str) -> Result<NoteSigner, NoteError> {
        check_name(name)?;
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        Ok(Self::from_key(name, key))
    }

    fn from_key(name: &str, key: SigningKey) -> NoteSigner {
        let id = key_id(name, &key.verifying_key());
        NoteSigner {
            name: name.to_string(),
            id,
            key,
        }
    }

    /// Parses `PRIVATE+KEY+<name>+<id>+<base64(0x01 || 32-byte seed)>`, checking the id.
    pub fn parse(text: &str) -> Result<NoteSigner, NoteError> {
        let bad = |why: &str| NoteError::MalformedKey(why.to_string());
        let rest = text
            .trim_end_matches(['\n', '\r'])
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(|| bad("a signer key starts with PRIVATE+KEY+"))?;
        let (name, id, data) = split_key(rest)?;
        let bytes = B64
            .decode(data)
            .map_err(|_| bad("the key data is not base64"))?;
        let seed: [u8; 32] = match bytes.split_first() {
            Some((&ALG_ED25519, seed)) => seed
                .try_into()
                .map_err(|_| bad("an Ed25519 seed has 32 bytes"))?,
            _ => return Err(bad("only Ed25519 keys (algorithm 1) are supported")),
        };
        let signer = Self::from_key(name, SigningKey::from_bytes(&seed));
        if signer.id != id {
            return Err(bad("the key id does not match the key"));
        }
        Ok(signer)
    }

    /// The key in the form [`NoteSigner::parse`] reads (and Go's `note.NewSigner`). Secret:
    /// for the key file only.
    pub fn to_private_text(&self) -> String {
        let mut data = vec![ALG_ED25519];
        data.extend_from_slice(self.key.as_bytes());
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.id,
            B64.encode(data)
        )
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            id: self.id,
            key: self.key.verifying_key(),
        }
    }

    /// Signs `text` (which must end in a newline and hold no blank line, as a note's text
    /// must) and returns the whole note.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        let sig = self.key.sign(text.as_bytes());
        let mut data = self.id.to_be_bytes().to_vec();
        data.extend_from_slice(&sig.to_bytes());
        Ok(format!(
            "{text}\n{SIG_PREFIX}{} {}\n",
            self.name,
            B64.encode(data)
        ))
    }
}

/// The verifying side, parsed from or printed as `<name>+<id>+<base64(0x01 || key)>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    id: u32,
    key: VerifyingKey,
}

impl std::fmt::Display for NoteVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut data = vec![ALG_ED25519];
        data.extend_from_slice(self.key.as_bytes());
        write!(f, "{}+{:08x}+{}", self.name, self.id, B64.encode(data))
    }
}

impl NoteVerifier {
    pub fn parse(text: &str) -> Result<NoteVerifier, NoteError> {
        let bad = |why: &str| NoteError::MalformedKey(why.to_string());
        let (name, id, data) = split_key(text.trim())?;
        let bytes = B64
            .decode(data)
            .map_err(|_| bad("the key data is not base64"))?;
        let public: [u8; 32] = match bytes.split_first() {
            Some((&ALG_ED25519, key)) => key
                .try_into()
                .map_err(|_| bad("an Ed25519 public key has 32 bytes"))?,
            _ => return Err(bad("only Ed25519 keys (algorithm 1) are supported")),
        };
        let key =
            VerifyingKey::from_bytes(&public).map_err(|_| bad("not a valid Ed25519 public key"))?;
        if key_id(name, &key) != id {
            return Err(bad("the key id does not match the key"));
        }
        Ok(NoteVerifier {
            name: name.to_string(),
            id,
            key,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Checks that `note` carries a valid signature by this key and returns its text.
    /// Signatures by other keys are ignored, as C2SP signed-note says a verifier does.
    pub fn open<'n>(&self, note: &'n str) -> Result<&'n str, NoteError> {
        let (text, sigs) = split_note(note)?;
        let mut found = false;
        for line in sigs.lines() {
            let rest = line.strip_prefix(SIG_PREFIX).ok_or_else(|| {
                NoteError::MalformedNote(format!("not a signature line: {line:?}"))
            })?;
            let (name, sig) = rest.split_once(' ').ok_or_else(|| {
                NoteError::MalformedNote(format!("not a signature line: {line:?}"))
            })?;
            let data = B64
                .decode(sig)
                .map_err(|_| NoteError::MalformedNote("a signature is not base64".into()))?;
            if name != self.name || data.len() < 4 || data[..4] != self.id.to_be_bytes() {
                continue;
            }
            found = true;
            let sig = ed25519_dalek::Signature::from_slice(&data[4..])
                .map_err(|_| NoteError::BadSignature(self.name.clone()))?;
            self.key
                .verify_strict(text.as_bytes(), &sig)
                .map_err(|_| NoteError::BadSignature(self.name.clone()))?;
        }
        if found {
            Ok(text)
        } else {
            Err(NoteError::NoSignatureByKey {
                name: self.name.clone(),
                key_id: self.id,
            })
        }
    }
}

fn split_key(text: &str) -> Result<(&str, u32, &str), NoteError> {
    let bad = || NoteError::MalformedKey("expected NAME+KEYID+DATA".into());
    let mut parts = text.splitn(3, '+');
    let (name, id, data) = match (parts.next(), parts.next(), parts.next()) {
        (Some(n), Some(i), Some(d)) => (n, i, d),
        _ => return Err(bad()),
    };
    check_name(name)?;
    if id.len() != 8 {
        return Err(NoteError::MalformedKey(
            "the key id has 8 hex digits".into(),
        ));
    }
    let id = u32::from_str_radix(id, 16)
        .map_err(|_| NoteError::MalformedKey("the key id has 8 hex digits".into()))?;
    Ok((name, id, data))
}

fn check_text(text: &str) -> Result<(), NoteError> {
    if text.is_empty() || !text.ends_with('\n') || text.contains("\n\n") || text.contains('\r') {
        return Err(NoteError::MalformedNote(
            "a note's text ends in a newline and holds no blank line".into(),
        ));
    }
    Ok(())
}

/// Splits a note into its text (through its last newline) and its signature block.
fn split_note(note: &str) -> Result<(&str, &str), NoteError> {
    let at = note
        .rfind("\n\n")
        .ok_or_else(|| NoteError::MalformedNote("no blank line before the signatures".into()))?;
    let (text, sigs) = (&note[..=at], &note[at + 2..]);
    check_text(text)?;
    if sigs.is_empty() || !sigs.ends_with('\n') {
        return Err(NoteError::MalformedNote(
            "the signature block must end in a newline".into(),
        ));
    }
    Ok((text, sigs))
}

/// A C2SP `tlog-checkpoint` body: origin, tree size, root hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    /// The note text: three lines, each ending in a newline.
    pub fn text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    /// Reads a checkpoint from a note's text (extension lines after the third are allowed
    /// and ignored, as the C2SP format permits).
    pub fn parse(text: &str) -> Result<Checkpoint, NoteError> {
        let bad = |why: &str| NoteError::MalformedCheckpoint(why.to_string());
        let mut lines = text.split_terminator('\n');
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or_else(|| bad("no origin line"))?;
        let size = lines
            .next()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .filter(|s| s.len() == 1 || !s.starts_with('0'))
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| bad("the second line must be the tree size in decimal"))?;
        let root: Hash = lines
            .next()
            .and_then(|r| B64.decode(r).ok())
            .and_then(|r| r.try_into().ok())
            .ok_or_else(|| bad("the third line must be a 32-byte root hash in base64"))?;
        Ok(Checkpoint {
            origin: origin.to_string(),
            size,
            root,
        })
    }

    /// Opens a signed checkpoint note with `verifier` and checks that its origin is the
    /// verifier's key name.
    pub fn open(note: &str, verifier: &NoteVerifier) -> Result<Checkpoint, NoteError> {
        let checkpoint = Checkpoint::parse(verifier.open(note)?)?;
        if checkpoint.origin != verifier.name() {
            return Err(NoteError::MalformedCheckpoint(format!(
                "the origin {:?} is not the key's name {:?}",
                checkpoint.origin,
                verifier.name()
            )));
        }
        Ok(checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example published with Go's golang.org/x/mod/sumdb/note package (facts to test
    // against: its key, its verifier key and the note it signs).
    const GO_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const GO_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                           then you don't know what your problem is.\n";
    const GO_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    #[test]
    fn signs_the_go_example_byte_for_byte() {
        let signer = NoteSigner::parse(GO_SKEY).unwrap();
        assert_eq!(signer.verifier().to_string(), GO_VKEY);
        assert_eq!(signer.to_private_text(), GO_SKEY);
        let note = signer.sign(GO_TEXT).unwrap();
        assert_eq!(note, format!("{GO_TEXT}\n{GO_SIG}"));
    }

    #[test]
    fn opens_the_go_example_and_refuses_changes() {
        let verifier = NoteVerifier::parse(GO_VKEY).unwrap();
        let note = format!("{GO_TEXT}\n{GO_SIG}");
        assert_eq!(verifier.open(&note).unwrap(), GO_TEXT);
        let edited = note.replacen("cryptography", "cryptographY", 1);
        assert_eq!(
            verifier.open(&edited),
            Err(NoteError::BadSignature("PeterNeumann".into()))
        );
        let other = NoteSigner::generate("PeterNeumann").unwrap().verifier();
        assert!(matches!(
            other.open(&note),
            Err(NoteError::NoSignatureByKey { .. })
        ));
    }

    #[test]
    fn malformed_keys_are_refused() {
        for bad in [
            "",
            "PeterNeumann",
            "PeterNeumann+c74f20a3",
            "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "PeterNeumann+c74f20a3+ApRc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "PeterNeumann+c74f20a3+!!",
        ] {
            assert!(NoteVerifier::parse(bad).is_err(), "{bad:?}");
        }
        assert!(NoteSigner::parse(GO_VKEY).is_err());
        assert!(NoteSigner::parse(&GO_SKEY.replace("c74f20a3", "c74f20a4")).is_err());
    }

    #[test]
    fn checkpoints_round_trip_and_check_their_origin() {
        let signer = NoteSigner::generate("example.com/log").unwrap();
        let cp = Checkpoint {
            origin: "example.com/log".into(),
            size: 42,
            root: [7u8; 32],
        };
        let note = signer.sign(&cp.text()).unwrap();
        assert_eq!(Checkpoint::open(&note, &signer.verifier()).unwrap(), cp);
        let other = NoteSigner::generate("example.com/other").unwrap();
        let foreign = Checkpoint {
            origin: "example.com/log".into(),
            ..cp.clone()
        };
        let note = other.sign(&foreign.text()).unwrap();
        assert!(Checkpoint::open(&note, &other.verifier()).is_err());
        for bad in ["o\n01\nAA==\n", "o\n-1\n", "\n1\n", "o\n1\nAAAA\n"] {
            assert!(Checkpoint::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn debug_never_shows_the_key() {
        let signer = NoteSigner::parse(GO_SKEY).unwrap();
        let shown = format!("{signer:?}");
        assert!(!shown.contains("AYEKFALV"), "{shown}");
        assert!(shown.contains("c74f20a3"));
    }
}
