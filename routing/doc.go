// Package routing is Relais's rules engine: it compiles the configured
// routes, evaluates them for every durable instance, and turns the routes
// that fire into durable delivery tasks of package routing/queue, whose
// Dispatcher delivers them.
//
// # Rules
//
// A route's when is an expr-lang expression (github.com/expr-lang/expr),
// type-checked at compilation. Its names are:
//
//   - every DICOM keyword: the instance's value as indexed by ingest
//     (string, multiple values joined by '\', "" when absent); the kept
//     sequences (storage.SequenceItemTags) are lists of maps by keyword:
//     any(OtherPatientIDsSequence, {.IssuerOfPatientID == "INS-NIR"});
//   - the arrival context: CallingAE, CalledAE, SourceAddr, Channel
//     ("dimse", "stow", "import"), User;
//   - time: Now is the instance's arrival time (never the wall clock, so a
//     replay decides the same), and weekday() ("Mon".."Sun"), hour(),
//     weekend(), holiday() (French public holidays, configurable),
//     night("20:00", "08:00"), within("Mon-Fri 08:00-18:00") and
//     oncall("pds") / oncall("pds", "neuro") (an iCalendar rota shift, by
//     summary, attendee or category, covers Now), all in the configured
//     time zone (Europe/Paris by default);
//   - stroke(): a stroke pattern (Options.StrokePatterns, default
//     DefaultStrokePatterns) in StudyDescription, ProtocolName,
//     RequestedProcedureDescription, SeriesDescription or a code meaning of
//     the Procedure Code Sequence; stroke("(?i)AVC") uses its own patterns.
//
// Unknown names, type errors, bad windows or times, unknown or unreadable
// calendars, unknown destinations and bad coerce blocks are refused with
// an error naming the route (RuleError). Routes are evaluated in order; the
// first that matches decides unless it says continue. Evaluation reports
// why: the values the condition read and what each function answered.
//
// # Engine
//
// Ingest hands every durable instance to Engine.OnDurable (a buffered
// channel). The engine's goroutine evaluates the rules and writes, in one
// queue-store transaction (queue.Store.Enqueue), the tasks it creates, its
// stability state and its watermark: ingest's SafeSeq read before the
// channel was drained. At start it replays the journal's instance events
// above the watermark through the same processing, which is idempotent:
// task IDs are deterministic (TaskID: route, destinations, SOP Instance
// UID, generation) and put-if-absent, and each instance recorded for a
// stable study carries the journal sequence it came from. A kill -9 thus
// loses no routing decision and duplicates none; only deliveries in flight
// may be repeated (the queue counts them).
//
// An immediate route creates one task per instance and forward
// destination (the failover list behind it) as soon as it is durable. A
// stable route records the instance for its (route, study) and fires the
// study when no instance arrived for stable_after (default 60 s, 10 s for
// STAT), measured from the last arrival time; the timers are that state,
// persisted, so they survive restarts. Instances arriving after the study
// fired are sent once the study is stable again (late: send) or the whole
// study is sent again (late: resend).
//
// When a route fires (a stable study, or the first instance of a study for
// an immediate route) its actions run: route.fired journal events (one per
// instance for immediate routes, one per study for stable ones), the
// "study ready for reading" event (journal study.ready and Deps.OnReady)
// when ready is set, the webhook (POST JSON {route, study, priority,
// instances, time, mode}, retried, journaled as route.webhook) and priors
// (Deps.Priors: C-FIND and C-MOVE from the configured remote AE, then tasks
// for the prior instances to the route's destinations). Coercion travels
// with each task (Task.Coerce, a coerce.Spec) and Prepare, the
// Dispatcher's hook, applies it with dicom.Edit to the copy sent.
//
// Engine.AdminHandler serves GET /api/routes, POST /api/routes/reload and
// POST /api/routes/test; `relais route list|test|reload` use it or the
// configuration file.
package routing
