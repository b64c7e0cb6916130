//! Exactness rules, as pure functions: can the log serve "everything after X" exactly, and was
//! the log lost since a reader last looked? The I/O around them is in [`super::log`] and
//! [`super::bridge`].

use super::decode::LogState;
use crate::sse::id::EventId;

/// How a resume from `after` can be served by the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    /// Every event after `after` is in the log: serve it, no reset.
    Exact,
    /// `after` is beyond what the log has handed out so far (the client comes from an instance
    /// that is ahead, or the log was lost): hold the client briefly and ask again.
    Ahead,
    /// Something after `after` was trimmed or deleted, or `after` belongs to a lost log: send
    /// `reset` first.
    Inexact,
}

/// Can the log serve every event after `after` exactly? Only if nothing after `after` was
/// ever removed. Redis 7.0 records the highest id removed by `XDEL` (`max-deleted-entry-id`;
/// a log re-created after a loss records the floor it was raised above there too, so an id
/// from a lost log is refused), but a trim (`MAXLEN`) only moves the first entry: when anything
/// was ever removed (`entries-added` > `length`), an `after` before the first entry may have
/// missed trimmed entries, so it is inexact (even the one id right before the first entry,
/// which Redis cannot tell apart). `None` (no stream): only `0-0` is served, by nothing.
pub fn resume_from(state: Option<&LogState>, after: EventId) -> Resume {
    let Some(state) = state else {
        return if after == EventId::ZERO {
            Resume::Exact
        } else {
            Resume::Ahead
        };
    };
    if state.max_deleted > after || trimmed_after(state, after) {
        Resume::Inexact
    } else if after > state.last_generated {
        Resume::Ahead
    } else {
        Resume::Exact
    }
}

/// True when entries after `after` may have been trimmed from the head of the log.
pub fn trimmed_after(state: &LogState, after: EventId) -> bool {
    if state.entries_added <= state.length {
        return false; // nothing was ever removed
    }
    match state.first_entry {
        Some(first) => after < first,
        None => after < state.last_generated,
    }
}

/// What a reader remembers of the log from its last look.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Seen {
    /// The last entry id it read (`0-0`: none yet).
    pub last_id: EventId,
    /// `entries-added` when it last looked (0: never looked).
    pub entries_added: u64,
    /// Whether it has seen the stream exist.
    pub existed: bool,
}

/// Why a log counts as lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// The stream key is gone (Redis restarted without its data, or the key was deleted).
    Missing,
    /// The stream hands out ids below what was already read (a failover lost writes, or the
    /// stream was re-created).
    IdsWentBack {
        last_read: EventId,
        last_generated: EventId,
    },
    /// Fewer entries were ever added than before (the stream was re-created).
    AddedWentBack { before: u64, now: u64 },
    /// The last entry read is gone although nothing at or after it was trimmed or deleted.
    EntryVanished(EventId),
    /// Entries after the last one read were trimmed before they were read (the reader fell
    /// more than `--redis-maxlen` behind, or was away that long).
    TrimmedPast {
        last_read: EventId,
        max_deleted: EventId,
    },
    /// A marker entry (this id) says the log was re-created above a floor after a loss.
    Recreated(EventId),
}

impl std::fmt::Display for Loss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Loss::Missing => f.write_str("the log stream is gone"),
            Loss::IdsWentBack {
                last_read,
                last_generated,
            } => write!(
                f,
                "the log's last id {last_generated} is below {last_read}, already read"
            ),
            Loss::AddedWentBack { before, now } => write!(
                f,
                "the log counts {now} entries ever added, fewer than {before} before"
            ),
            Loss::EntryVanished(id) => write!(f, "entry {id} vanished without a trim"),
            Loss::TrimmedPast {
                last_read,
                max_deleted,
            } => write!(
                f,
                "entries up to {max_deleted} were trimmed before they were read after {last_read}"
            ),
            Loss::Recreated(id) => write!(f, "the log was re-created after a loss at {id}"),
        }
    }
}

/// Compares what a reader saw with the stream's state now (`None`: no stream). The last check
/// needs one more fact, whether the entry `seen.last_id` still exists; ask for it with
/// [`must_still_exist`] and pass the answer as `last_entry_exists` (`true` when not asked).
pub fn check_continuity(
    seen: &Seen,
    now: Option<&LogState>,
    last_entry_exists: bool,
) -> Result<(), Loss> {
    let Some(now) = now else {
        return if seen.existed || seen.last_id > EventId::ZERO {
            Err(Loss::Missing)
        } else {
            Ok(())
        };
    };
    if now.last_generated < seen.last_id {
        return Err(Loss::IdsWentBack {
            last_read: seen.last_id,
            last_generated: now.last_generated,
        });
    }
    if now.entries_added < seen.entries_added {
        return Err(Loss::AddedWentBack {
            before: seen.entries_added,
            now: now.entries_added,
        });
    }
    if seen.existed && (now.max_deleted > seen.last_id || trimmed_after(now, seen.last_id)) {
        return Err(Loss::TrimmedPast {
            last_read: seen.last_id,
            max_deleted: now.max_deleted,
        });
    }
    if !last_entry_exists && must_still_exist(now, seen.last_id) {
        return Err(Loss::EntryVanished(seen.last_id));
    }
    Ok(())
}

/// True when an entry `id` that was read must still be in the stream: it is an entry (not
/// `0-0`), no `XDEL` reached it and no trim did (it is not before the first entry).
pub fn must_still_exist(now: &LogState, id: EventId) -> bool {
    id > EventId::ZERO && now.max_deleted < id && now.first_entry.is_some_and(|f| f <= id)
}

/// The id a re-created log must start above: the highest id anyone here has delivered or had
/// acknowledged, so no later id is at or below one a client may hold.
pub fn raise_floor(delivered: EventId, acknowledged: EventId) -> EventId {
    delivered.max(acknowledged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ms: u64, seq: u64) -> EventId {
        EventId::new(ms, seq)
    }

    fn state(first: Option<EventId>, last: EventId, deleted: EventId, added: u64) -> LogState {
        LogState {
            length: if deleted > EventId::ZERO {
                added / 2
            } else {
                added
            },
            first_entry: first,
            last_generated: last,
            max_deleted: deleted,
            entries_added: added,
        }
    }

    #[test]
    fn exactness_table() {
        let untrimmed = state(Some(id(10, 0)), id(20, 0), EventId::ZERO, 5);
        let trimmed = state(Some(id(15, 0)), id(20, 0), id(14, 3), 5);
        let recreated = LogState {
            length: 1,
            ..state(Some(id(30, 1)), id(30, 1), id(30, 0), 1)
        };
        // MAXLEN trims move the first entry but not max-deleted-entry-id (Redis 7.0).
        let maxlen_trimmed = LogState {
            length: 3,
            ..state(Some(id(18, 0)), id(20, 0), EventId::ZERO, 5)
        };
        let all_deleted = LogState {
            length: 0,
            ..state(None, id(20, 0), EventId::ZERO, 5)
        };
        use Resume::*;
        let rows: &[(Option<&LogState>, EventId, Resume)] = &[
            (Some(&untrimmed), EventId::ZERO, Exact),
            (Some(&untrimmed), id(9, 0), Exact),
            (Some(&untrimmed), id(12, 5), Exact),
            (Some(&untrimmed), id(20, 0), Exact),
            (Some(&untrimmed), id(20, 1), Ahead), // from an instance that read further
            (Some(&trimmed), id(14, 3), Inexact), // before the first entry of a trimmed log
            (Some(&trimmed), id(14, 2), Inexact),
            (Some(&trimmed), EventId::ZERO, Inexact),
            (Some(&trimmed), id(17, 0), Exact),
            (Some(&trimmed), id(99, 0), Ahead),
            (Some(&recreated), id(29, 9), Inexact), // from the lost log
            (Some(&recreated), id(30, 0), Exact),   // the floor itself: the rest is here
            (None, EventId::ZERO, Exact),
            (None, id(1, 0), Ahead),
            (Some(&maxlen_trimmed), id(17, 9), Inexact), // may have missed trimmed ones
            (Some(&maxlen_trimmed), EventId::ZERO, Inexact),
            (Some(&maxlen_trimmed), id(18, 0), Exact),
            (Some(&maxlen_trimmed), id(19, 0), Exact),
            (Some(&maxlen_trimmed), id(21, 0), Ahead),
            (Some(&all_deleted), id(19, 0), Inexact),
            (Some(&all_deleted), id(20, 0), Exact),
        ];
        for (i, (st, after, want)) in rows.iter().enumerate() {
            assert_eq!(resume_from(*st, *after), *want, "row {i}: after {after}");
        }
    }

    #[test]
    fn continuity_table() {
        let seen = Seen {
            last_id: id(20, 0),
            entries_added: 5,
            existed: true,
        };
        let fresh = Seen::default();
        let same = state(Some(id(10, 0)), id(20, 0), EventId::ZERO, 5);
        let grown = state(Some(id(10, 0)), id(25, 0), EventId::ZERO, 7);
        let trimmed_past = state(Some(id(22, 0)), id(25, 0), id(21, 0), 7);
        let maxlen_past = LogState {
            length: 3,
            ..state(Some(id(22, 0)), id(25, 0), EventId::ZERO, 9)
        };
        let maxlen_upto = LogState {
            length: 3,
            ..state(Some(id(20, 0)), id(25, 0), EventId::ZERO, 9)
        };
        let back = state(Some(id(10, 0)), id(18, 0), EventId::ZERO, 4);
        let recreated_higher = state(Some(id(30, 0)), id(30, 0), id(20, 0), 1);
        let failover_then_grew = state(Some(id(10, 0)), id(40, 0), EventId::ZERO, 9);
        type Row<'a> = (&'a Seen, Option<&'a LogState>, bool, Result<(), Loss>);
        let rows: &[Row] = &[
            (&seen, Some(&same), true, Ok(())),
            (&seen, Some(&grown), true, Ok(())),
            (
                &seen,
                Some(&trimmed_past),
                false,
                Err(Loss::TrimmedPast {
                    last_read: id(20, 0),
                    max_deleted: id(21, 0),
                }),
            ),
            (
                &seen,
                Some(&maxlen_past),
                false,
                Err(Loss::TrimmedPast {
                    last_read: id(20, 0),
                    max_deleted: EventId::ZERO,
                }),
            ),
            (&seen, Some(&maxlen_upto), true, Ok(())),
            (
                &seen,
                Some(&maxlen_upto),
                false,
                Err(Loss::EntryVanished(id(20, 0))),
            ),
            (&seen, None, true, Err(Loss::Missing)),
            (&fresh, None, true, Ok(())),
            (
                &seen,
                Some(&back),
                true,
                Err(Loss::IdsWentBack {
                    last_read: id(20, 0),
                    last_generated: id(18, 0),
                }),
            ),
            (
                &seen,
                Some(&recreated_higher),
                true,
                Err(Loss::AddedWentBack { before: 5, now: 1 }),
            ),
            (
                &seen,
                Some(&failover_then_grew),
                false,
                Err(Loss::EntryVanished(id(20, 0))),
            ),
            (&fresh, Some(&same), false, Ok(())),
        ];
        for (i, (seen, now, exists, want)) in rows.iter().enumerate() {
            assert_eq!(check_continuity(seen, *now, *exists), *want, "row {i}");
        }
    }

    #[test]
    fn floor_is_the_highest_known_id() {
        assert_eq!(raise_floor(id(5, 0), id(4, 9)), id(5, 0));
        assert_eq!(raise_floor(id(5, 0), id(5, 1)), id(5, 1));
        assert_eq!(raise_floor(EventId::ZERO, EventId::ZERO), EventId::ZERO);
    }
}
