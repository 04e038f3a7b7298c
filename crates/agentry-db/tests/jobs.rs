//! The generic job queue on both engines: priority order, idempotency keys
//! per owner, leases that name their attempt, dead jobs after the last
//! attempt, cancellation and retry.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use agentry_db::Db;
use agentry_db::jobs::{Cancelled, ClaimRequest, JobEnding, JobFilter, JobRecord, Settle};
use agentry_types::{JobKind, JobStatus};

async fn claim(db: &Db, kinds: &[JobKind], now_ms: i64, lease_ms: i64) -> Option<JobRecord> {
    let request = ClaimRequest { kinds, lease_ms, limit: 1, orphans: true };
    db.settle_and_claim(&[], Some(request), now_ms).await.unwrap().1.into_iter().next()
}

async fn settle(db: &Db, id: &str, claim: i64, ending: JobEnding<'_>, now_ms: i64) -> bool {
    db.settle_and_claim(&[Settle { id, claim, ending }], None, now_ms).await.unwrap().0 == [true]
}

async fn end(db: &Db, id: &str, claim: i64, status: JobStatus, error: Option<&str>, now_ms: i64) -> bool {
    settle(db, id, claim, JobEnding::Ended { status, error }, now_ms).await
}

fn job(id: &str, priority: i32, key: Option<&str>, owner: &str, max_attempts: i32) -> JobRecord {
    JobRecord {
        id: id.into(),
        tenant_id: "t1".into(),
        kind: JobKind::AgentRun,
        subject_id: format!("run-{id}"),
        subject_version: 0,
        owner: Some(owner.into()),
        delegation: Some("{}".into()),
        payload: "{}".into(),
        priority,
        idempotency_key: key.map(str::to_owned),
        status: JobStatus::Queued,
        attempts: 0,
        claims: 0,
        max_attempts,
        run_after_ms: 1_000,
        locked_until_ms: None,
        progress_done: 0,
        progress_total: None,
        error: None,
        created_at_ms: 1_000,
        updated_at_ms: 1_000,
        finished_at_ms: None,
    }
}

#[tokio::test]
async fn the_queue_claims_by_priority_and_keeps_its_promises() {
    let dir = tempfile::tempdir().unwrap();
    for db in agentry_db::test_support::test_databases(dir.path()).await {
        db.migrate().await.unwrap();
        let kinds = [JobKind::AgentRun];
        let (low, created) = db.insert_job(&job("a", 0, Some("k1"), "user:u1", 2)).await.unwrap();
        assert!(created);
        // The same key from the same owner is the same job; from another owner it is another.
        let (again, created) = db.insert_job(&job("a2", 0, Some("k1"), "user:u1", 2)).await.unwrap();
        assert_eq!((again.id.as_str(), created), ("a", false));
        assert!(db.insert_job(&job("b", 0, Some("k1"), "user:u2", 2)).await.unwrap().1, "{:?}", db.backend());
        db.insert_job(&job("urgent", 10, None, "user:u1", 2)).await.unwrap();
        assert!(claim(&db, &[JobKind::Index], 2_000, 1_000).await.is_none(), "other kinds are not claimed");
        let first = claim(&db, &kinds, 2_000, 1_000).await.unwrap();
        assert_eq!((first.id.as_str(), first.attempts, first.claims, first.status), ("urgent", 1, 1, JobStatus::Running));
        assert!(end(&db, "urgent", 1, JobStatus::Succeeded, None, 2_100).await);
        assert!(!end(&db, "urgent", 1, JobStatus::Failed, Some("late"), 2_200).await, "an ended job stays ended");

        // A lease names its claim: after a takeover the first worker can neither renew nor end it.
        let claimed = claim(&db, &kinds, 3_000, 1_000).await.unwrap();
        assert_eq!(claimed.id, low.id);
        assert!(db.renew_job_lease("a", 1, 3_500, 1_000).await.unwrap());
        // A job whose worker died is taken over before queued ones.
        let taken = claim(&db, &kinds, 5_000, 1_000).await;
        assert_eq!(taken.map(|t| (t.id, t.attempts, t.claims)), Some(("a".to_owned(), 2, 2)), "expired lease: claimed again");
        let taken = claim(&db, &kinds, 5_001, 1_000).await.unwrap();
        assert_eq!((taken.id.as_str(), taken.attempts), ("b", 1));
        assert!(settle(&db, "b", 1, JobEnding::RetryAt { at_ms: 1_000_000, error: "upstream down" }, 5_001).await);
        assert!(!db.renew_job_lease("a", 1, 5_002, 1_000).await.unwrap());
        assert!(!end(&db, "a", 1, JobStatus::Succeeded, None, 5_003).await);
        // Its worker dies on the last attempt: it is never claimed again, and burying makes it dead with the reason.
        assert!(claim(&db, &kinds, 7_000, 1_000).await.is_none());
        let buried = db.bury_exhausted_jobs(&kinds, 7_000).await.unwrap();
        assert_eq!(buried.iter().map(|j| (j.id.as_str(), j.status)).collect::<Vec<_>>(), [("a", JobStatus::Dead)]);
        let a = db.job("t1", "a").await.unwrap().unwrap();
        assert!(a.error.as_deref().unwrap_or_default().contains("gave up after 2 attempts"), "{:?}", a.error);
        assert!(db.bury_exhausted_jobs(&kinds, 8_000).await.unwrap().is_empty(), "buried once");

        // Retry gives fresh attempts but keeps counting claims: the old claims stay fenced off.
        assert!(db.requeue_job("t1", "a", Some(r#"{"as":"master_key"}"#), 9_000).await.unwrap());
        assert!(!db.requeue_job("t1", "a", None, 9_000).await.unwrap(), "only ended jobs are requeued");
        let again = claim(&db, &kinds, 9_001, 1_000).await.unwrap();
        assert_eq!((again.attempts, again.claims, again.delegation.as_deref()), (1, 3, Some(r#"{"as":"master_key"}"#)));
        assert!(!db.renew_job_lease("a", 1, 9_002, 1_000).await.unwrap(), "a claim from before the retry holds nothing");
        // A stopping worker hands its job back without using an attempt.
        assert!(db.hand_back_job("a", 3, 9_003).await.unwrap());
        assert_eq!(db.job("t1", "a").await.unwrap().unwrap().attempts, 0);
        // Cancel ends a queued job at once.
        match db.cancel_job("t1", "a", 9_100).await.unwrap() {
            Some(Cancelled::WasQueued(job)) => assert_eq!((job.status, job.attempts), (JobStatus::Cancelled, 0)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(db.cancel_job("t1", "a", 9_200).await.unwrap(), Some(Cancelled::AlreadyEnded(_))));
        assert!(db.cancel_job("t2", "a", 9_200).await.unwrap().is_none(), "tenant scoped");

        let mine = db.jobs("t1", &JobFilter { owner: Some("user:u1"), kinds: &kinds, status: None }, None, 10).await.unwrap();
        assert_eq!(mine.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), ["urgent", "a"], "newest first, own only");
        let cancelled = db.jobs("t1", &JobFilter { owner: None, kinds: &kinds, status: Some(JobStatus::Cancelled) }, None, 10).await.unwrap();
        assert_eq!(cancelled.len(), 1);
        assert!(db.jobs("t1", &JobFilter { owner: None, kinds: &[], status: None }, None, 10).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn one_round_trip_settles_many_claims_and_takes_the_next_in_priority_order() {
    let dir = tempfile::tempdir().unwrap();
    for db in agentry_db::test_support::test_databases(dir.path()).await {
        db.migrate().await.unwrap();
        let kinds = [JobKind::AgentRun];
        for (id, priority) in [("p0", 0), ("p5", 5), ("p9", 9), ("p1", 1), ("p7", 7)] {
            db.insert_job(&job(id, priority, None, "user:u1", 3)).await.unwrap();
        }
        let request = |limit| Some(ClaimRequest { kinds: &kinds, lease_ms: 1_000, limit, orphans: false });
        let (_, first) = db.settle_and_claim(&[], request(3), 2_000).await.unwrap();
        assert_eq!(first.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), ["p9", "p7", "p5"], "{:?}", db.backend());
        assert!(first.iter().all(|j| j.status == JobStatus::Running && j.claims == 1));
        // Two end, one retries later, a stale claim is refused; the rest are claimed in the same round trip.
        let settles = [
            Settle { id: "p9", claim: 1, ending: JobEnding::Ended { status: JobStatus::Succeeded, error: None } },
            Settle { id: "p7", claim: 1, ending: JobEnding::Ended { status: JobStatus::Failed, error: Some("bad input") } },
            Settle { id: "p5", claim: 1, ending: JobEnding::RetryAt { at_ms: 60_000, error: "later" } },
            Settle { id: "p5", claim: 0, ending: JobEnding::Ended { status: JobStatus::Succeeded, error: None } },
        ];
        let (written, next) = db.settle_and_claim(&settles, request(5), 2_100).await.unwrap();
        assert_eq!(written, [true, true, true, false]);
        assert_eq!(next.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), ["p1", "p0"], "p5 waits for its retry time");
        let status = async |id: &str| db.job("t1", id).await.unwrap().unwrap();
        assert_eq!((status("p9").await.status, status("p7").await.error.as_deref()), (JobStatus::Succeeded, Some("bad input")));
        assert_eq!((status("p5").await.status, status("p5").await.run_after_ms), (JobStatus::Queued, 60_000));
        // Orphans (a lease run out) come before queued jobs when asked for.
        let orphans = Some(ClaimRequest { kinds: &kinds, lease_ms: 1_000, limit: 1, orphans: true });
        let (_, taken) = db.settle_and_claim(&[], orphans, 70_000).await.unwrap();
        assert!(taken.len() == 1 && ["p1", "p0"].contains(&taken[0].id.as_str()) && taken[0].claims == 2, "an expired lease before p5: {taken:?}");
        assert_eq!(db.settle_and_claim(&[], None, 70_001).await.unwrap(), (Vec::new(), Vec::new()), "nothing asked, nothing done");
    }
}
