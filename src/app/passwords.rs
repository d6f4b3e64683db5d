//! Password hashing on a bounded pool (Argon2id, PHC strings).
//!
//! Argon2id is memory-hard by design: one hash with OWASP's parameters fills 19 MiB. Run on
//! whatever thread asks, fifty concurrent sign-ins would take a gigabyte, and the allocator
//! keeps much of it afterwards. So every sign-in of a running service verifies on one
//! [`HashingPool`]: a few threads (at most `max(1, cores − 1)`, never more than 4, leaving a
//! core for everyone else), each reusing one memory block, behind a short queue. Past it the
//! caller gets [`Error::Overloaded`] (HTTP 503 with `Retry-After`) at once instead of
//! waiting: memory stays bounded whatever arrives. (The command line's one hash per
//! command, [`hash_now`], runs on its own thread.)
//!
//! Parameters follow the OWASP Password Storage Cheat Sheet (Argon2id, m = 19 MiB, t = 2,
//! p = 1). Each stored hash records its own parameters in its PHC string, so they can be
//! raised later: a successful verification of a hash made with other parameters returns a
//! new hash to store (re-hash on sign-in).

use crate::error::{Error, Result};
use argon2::password_hash::{rand_core::OsRng, Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

/// Memory cost in KiB (= Argon2 blocks of 1 KiB): OWASP's 19 MiB.
pub const M_COST_KIB: u32 = 19 * 1024;
/// Passes over the memory.
pub const T_COST: u32 = 2;
/// Lanes.
pub const P_COST: u32 = 1;
/// A stored hash that asks for more memory than this (KiB) is refused rather than computed:
/// it did not come from us, and computing it could take the memory the pool exists to bound.
const MAX_M_COST_KIB: u32 = 256 * 1024;
/// A hashing thread idle this long frees its memory block.
const IDLE_RELEASE: std::time::Duration = std::time::Duration::from_secs(5);
/// Queued hashes per hashing thread before callers are turned away.
const QUEUE_PER_THREAD: usize = 8;
/// At most this many hashing threads whatever the machine, so the memory they hold stays
/// within 4 × 19 MiB on a large host too.
const MAX_THREADS: usize = 4;

/// The parameters new hashes are made with.
pub fn current_params() -> Params {
    // The constants are within Argon2's limits, so this cannot fail; fall back to the
    // library's defaults (the same values) rather than panic.
    Params::new(M_COST_KIB, T_COST, P_COST, None).unwrap_or_default()
}

/// Hashes `password` with the current parameters and a fresh random salt, on the calling
/// thread: for the command line, which hashes once. Returns the PHC string
/// (`$argon2id$v=19$m=19456,t=2,p=1$SALT$HASH`).
pub fn hash_now(password: &str) -> Result<String> {
    let params = current_params();
    let mut memory = vec![Block::default(); params.block_count()];
    hash_with(&mut memory, password, &params)
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, PartialEq, Eq)]
pub enum Verified {
    /// Right password. `rehash` is a new PHC string to store when the stored one was made
    /// with other parameters than the current ones.
    Match {
        rehash: Option<String>,
    },
    NoMatch,
}

/// One job for a hashing thread.
struct Job {
    password: String,
    task: Task,
}

enum Task {
    /// Check the password against this stored PHC string.
    Verify {
        stored: String,
        reply: tokio::sync::oneshot::Sender<Result<Verified>>,
    },
    /// Hash a new password with the current parameters.
    Hash {
        reply: tokio::sync::oneshot::Sender<Result<String>>,
    },
}

impl Task {
    fn caller_gone(&self) -> bool {
        match self {
            Task::Verify { reply, .. } => reply.is_closed(),
            Task::Hash { reply } => reply.is_closed(),
        }
    }
}

fn overloaded() -> Error {
    Error::Overloaded("too many sign-ins at once; try again in a second".into())
}

/// The bounded pool of hashing threads. Cheap to clone; the threads stop when the last
/// clone is dropped.
#[derive(Clone)]
pub struct HashingPool {
    queue: SyncSender<Job>,
    threads: usize,
    /// Verifications the threads have finished.
    done: Arc<AtomicU64>,
    /// Admissions: a sign-in holds one from its first database read to its last write, so
    /// no more sign-ins are under way than the threads and the queue can take, and a storm
    /// is turned away before it touches the database.
    admissions: Arc<tokio::sync::Semaphore>,
}

/// A place among the sign-ins under way ([`HashingPool::admit`]); freed when dropped.
#[derive(Debug)]
pub struct Admission(#[allow(dead_code)] tokio::sync::OwnedSemaphorePermit);

impl std::fmt::Debug for HashingPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashingPool")
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

impl HashingPool {
    /// A pool sized for this machine: `max(1, cores − 1)` threads, at most [`MAX_THREADS`].
    pub fn for_this_machine() -> Result<HashingPool> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        HashingPool::new(cores.saturating_sub(1).clamp(1, MAX_THREADS))
    }

    /// A pool of `threads` hashing threads (at least 1) and a queue of
    /// [`QUEUE_PER_THREAD`] jobs per thread.
    pub fn new(threads: usize) -> Result<HashingPool> {
        let threads = threads.max(1);
        let (queue, jobs) = sync_channel::<Job>(threads * QUEUE_PER_THREAD);
        let jobs = Arc::new(Mutex::new(jobs));
        let done = Arc::new(AtomicU64::new(0));
        for i in 0..threads {
            let (jobs, done) = (jobs.clone(), done.clone());
            std::thread::Builder::new()
                .name(format!("password-hash-{i}"))
                .spawn(move || hashing_thread(&jobs, &done))
                .map_err(|e| Error::Internal(format!("cannot start a hashing thread: {e}")))?;
        }
        Ok(HashingPool {
            queue,
            threads,
            done,
            admissions: Arc::new(tokio::sync::Semaphore::new(
                threads * (QUEUE_PER_THREAD + 1),
            )),
        })
    }

    /// A place for one sign-in, or [`Error::Overloaded`] at once when as many are under way
    /// as the threads and the queue can take.
    pub fn admit(&self) -> Result<Admission> {
        self.admissions
            .clone()
            .try_acquire_owned()
            .map(Admission)
            .map_err(|_| overloaded())
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// How many verifications the pool has finished since it started.
    pub fn jobs_done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Checks `password` against the PHC string `stored`. A string that does not parse, or
    /// is not Argon2, verifies as [`Verified::NoMatch`] (it still costs one hash, so a broken
    /// row cannot be told from a wrong password by timing).
    ///
    /// Errors: [`Error::Overloaded`] when the queue is full.
    pub async fn verify(&self, password: String, stored: String) -> Result<Verified> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.send(Job {
            password,
            task: Task::Verify { stored, reply },
        })?;
        answer
            .await
            .map_err(|_| Error::Internal("a hashing thread dropped its job".into()))?
    }

    /// Hashes a new password with the current parameters (a set-password link, an admin
    /// creating a user), on the pool's threads like every other hash of the service.
    ///
    /// Errors: [`Error::Overloaded`] when the queue is full.
    pub async fn hash(&self, password: String) -> Result<String> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.send(Job {
            password,
            task: Task::Hash { reply },
        })?;
        answer
            .await
            .map_err(|_| Error::Internal("a hashing thread dropped its job".into()))?
    }

    fn send(&self, job: Job) -> Result<()> {
        match self.queue.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(overloaded()),
            Err(TrySendError::Disconnected(_)) => {
                return Err(Error::Internal("the hashing threads have stopped".into()))
            }
        }
        Ok(())
    }
}

fn hashing_thread(jobs: &Mutex<Receiver<Job>>, done_count: &AtomicU64) {
    // One memory block, sized for the current parameters, reused from job to job; allocated
    // on the first job and freed after IDLE_RELEASE without one.
    let mut memory: Vec<Block> = Vec::new();
    loop {
        let job = {
            let Ok(guard) = jobs.lock() else { return };
            match guard.recv_timeout(IDLE_RELEASE) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => {
                    // Idle: give the block back, so a quiet service holds none of it.
                    memory = Vec::new();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return, // the service stopped
            }
        };
        // A caller that has gone (a dropped request) needs no answer: skip the work.
        if job.task.caller_gone() {
            continue;
        }
        // (The caller may have gone meanwhile; the answer is then dropped.)
        match job.task {
            Task::Verify { stored, reply } => {
                let _ = reply.send(verify_with(&mut memory, &job.password, &stored));
            }
            Task::Hash { reply } => {
                let _ = reply.send(hash_with(&mut memory, &job.password, &current_params()));
            }
        }
        // A stored hash with more memory than ours grew the block: give the excess back.
        if memory.len() > current_params().block_count() {
            memory.truncate(current_params().block_count());
            memory.shrink_to_fit();
        }
        done_count.fetch_add(1, Ordering::Relaxed);
    }
}

/// Grows `memory` to `blocks` if needed and returns exactly that many.
fn blocks(memory: &mut Vec<Block>, blocks: usize) -> &mut [Block] {
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    &mut memory[..blocks]
}

fn hash_with(memory: &mut Vec<Block>, password: &str, params: &Params) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_raw = salt
        .decode_b64(&mut salt_bytes)
        .map_err(|e| Error::Internal(format!("password salt: {e}")))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut out = [0u8; 32];
    argon
        .hash_password_into_with_memory(
            password.as_bytes(),
            salt_raw,
            &mut out,
            blocks(memory, params.block_count()),
        )
        .map_err(|e| Error::Internal(format!("password hashing: {e}")))?;
    let output =
        Output::new(&out).map_err(|e| Error::Internal(format!("password hashing: {e}")))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: params
            .try_into()
            .map_err(|e| Error::Internal(format!("password hash parameters: {e}")))?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

/// What a stored PHC string asks for, or `None` if it is not an Argon2 hash we can compute.
struct StoredHash {
    algorithm: Algorithm,
    version: Version,
    params: Params,
    salt: Vec<u8>,
    expected: Output,
}

fn parse_stored(stored: &str) -> Option<StoredHash> {
    let phc = PasswordHash::new(stored).ok()?;
    let algorithm = Algorithm::try_from(phc.algorithm).ok()?;
    let version = match phc.version {
        Some(v) => Version::try_from(v).ok()?,
        None => Version::default(),
    };
    let params = Params::try_from(&phc).ok()?;
    if params.m_cost() > MAX_M_COST_KIB {
        return None;
    }
    let mut salt_bytes = [0u8; 64];
    let salt = phc.salt?.decode_b64(&mut salt_bytes).ok()?.to_vec();
    Some(StoredHash {
        algorithm,
        version,
        params,
        salt,
        expected: phc.hash?,
    })
}

fn verify_with(memory: &mut Vec<Block>, password: &str, stored: &str) -> Result<Verified> {
    let current = current_params();
    let Some(s) = parse_stored(stored) else {
        // Spend the same work as a real verification, then refuse.
        hash_with(memory, password, &current)?;
        return Ok(Verified::NoMatch);
    };
    let argon = Argon2::new(s.algorithm, s.version, s.params.clone());
    let mut out = vec![0u8; s.expected.len()];
    argon
        .hash_password_into_with_memory(
            password.as_bytes(),
            &s.salt,
            &mut out,
            blocks(memory, s.params.block_count()),
        )
        .map_err(|e| Error::Internal(format!("password verification: {e}")))?;
    let computed =
        Output::new(&out).map_err(|e| Error::Internal(format!("password verification: {e}")))?;
    // `Output`'s equality is constant-time.
    if computed != s.expected {
        return Ok(Verified::NoMatch);
    }
    let up_to_date = s.algorithm == Algorithm::Argon2id
        && s.version == Version::V0x13
        && s.params.m_cost() == current.m_cost()
        && s.params.t_cost() == current.t_cost()
        && s.params.p_cost() == current.p_cost();
    let rehash = if up_to_date {
        None
    } else {
        Some(hash_with(memory, password, &current)?)
    };
    Ok(Verified::Match { rehash })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verify_now(password: &str, stored: &str) -> Verified {
        let mut memory = Vec::new();
        verify_with(&mut memory, password, stored).unwrap()
    }

    #[test]
    fn a_hash_records_owasp_parameters_and_verifies_only_its_password() {
        let h = hash_now("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert_eq!(
            verify_now("correct horse battery", &h),
            Verified::Match { rehash: None }
        );
        assert_eq!(verify_now("correct horse batter", &h), Verified::NoMatch);
        assert_eq!(verify_now("anything", "not a hash"), Verified::NoMatch);
    }

    #[test]
    fn the_argon2_crate_verifies_our_hashes_and_we_verify_its() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let ours = hash_now("s3cret password").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password(b"s3cret password", &parsed)
            .is_ok());
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::default()
            .hash_password(b"s3cret password", &salt)
            .unwrap()
            .to_string();
        assert_eq!(
            verify_now("s3cret password", &theirs),
            Verified::Match { rehash: None }
        );
    }

    #[test]
    fn a_hash_with_older_parameters_is_rehashed_on_a_right_password() {
        use argon2::password_hash::PasswordHasher;
        let weak = Params::new(4096, 1, 1, None).unwrap();
        let salt = SaltString::generate(&mut OsRng);
        let old = Argon2::new(Algorithm::Argon2i, Version::V0x13, weak)
            .hash_password(b"old password!", &salt)
            .unwrap()
            .to_string();
        assert_eq!(verify_now("wrong", &old), Verified::NoMatch);
        let Verified::Match { rehash: Some(new) } = verify_now("old password!", &old) else {
            panic!("a right password against old parameters gives a new hash");
        };
        assert!(new.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{new}");
        assert_eq!(
            verify_now("old password!", &new),
            Verified::Match { rehash: None }
        );
    }

    #[test]
    fn a_stored_hash_asking_for_too_much_memory_is_refused_unrun() {
        let huge = "$argon2id$v=19$m=4194304,t=1,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG";
        assert_eq!(verify_now("password", huge), Verified::NoMatch);
    }

    #[test]
    fn a_full_queue_answers_overloaded_at_once() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let pool = HashingPool::new(1).unwrap();
            let stored = hash_now("the stored password").unwrap();
            let capacity = QUEUE_PER_THREAD + 1; // the queue plus the job in hand
            let mut pending = Vec::new();
            let mut overloaded = 0;
            for i in 0..capacity + 20 {
                let p = pool.clone();
                let (reply, answer) = tokio::sync::oneshot::channel();
                match p.queue.try_send(Job {
                    password: format!("password {i}"),
                    task: Task::Verify {
                        stored: stored.clone(),
                        reply,
                    },
                }) {
                    Ok(()) => pending.push(answer),
                    Err(TrySendError::Full(_)) => overloaded += 1,
                    Err(TrySendError::Disconnected(_)) => panic!("pool stopped"),
                }
            }
            assert!(overloaded >= 20, "only {overloaded} turned away");
            assert!(pending.len() <= capacity, "{} queued", pending.len());
            match pool.verify("one more".into(), stored.clone()).await {
                Err(Error::Overloaded(_)) => {}
                other => panic!("expected Overloaded while full, got {:?}", other.is_ok()),
            }
            for a in pending {
                assert!(matches!(a.await, Ok(Ok(Verified::NoMatch))));
            }
            // Drained: accepted again.
            assert!(pool.verify("after".into(), stored).await.is_ok());
        });
    }
}
