package worklist

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/relais-health/relais/journal"
)

// Escalation is the JSON payload of worklist.escalation_webhook.
type Escalation struct {
	Event    string    `json:"event"` // "worklist.escalated"
	Activity string    `json:"activity"`
	Deadline time.Time `json:"deadline"`
	Time     time.Time `json:"time"`
	Item     *Item     `json:"item"`
}

// Check runs the timers at the clock's time: expired locks return their
// items to scheduled, items not claimed (reported) escalate once per
// activity within worklist.escalate_before of the deadline, and items
// past a deadline are flagged overdue. Run calls it every worklist.check.
func (w *Worklist) Check() {
	now := w.now()
	set := w.d.Settings()
	type change struct {
		kind, user, reason string
		it                 *Item
		esc                *Escalation
	}
	var changes []change
	w.mu.Lock()
	for _, cur := range w.sortedLocked() {
		if !cur.Open() {
			continue
		}
		it := cur.clone()
		var ch []change
		if it.State == InProgress && !it.LockExpires.IsZero() && !now.Before(it.LockExpires) {
			by := it.ClaimedBy
			it.State, it.ClaimedBy, it.LockExpires = Scheduled, "", time.Time{}
			ch = append(ch, change{kind: "worklist.lock_expired", user: by, reason: fmt.Sprintf("the claim of %s expired (not renewed): back to scheduled", by)})
			w.m.lockExpired.Inc()
		}
		for _, a := range []struct {
			name     string
			open     bool
			deadline time.Time
		}{
			{ActivityClaim, it.ClaimedAt.IsZero() && it.State == Scheduled, it.ClaimDue},
			{ActivityReport, true, it.ReportDue},
		} {
			if !a.open || slices.Contains(it.Escalated, a.name) {
				continue
			}
			lead := set.EscalationLead(a.deadline.Sub(it.ReadyAt))
			if now.Before(a.deadline.Add(-lead)) {
				continue
			}
			it.Escalated = append(it.Escalated, a.name)
			it.Late = true
			left := a.deadline.Sub(now).Round(time.Second)
			reason := fmt.Sprintf("%s %s not done: deadline %s (in %s)", it.Priority, a.name, a.deadline.Format(time.RFC3339), left)
			if left <= 0 {
				reason = fmt.Sprintf("%s %s not done: deadline %s passed %s ago", it.Priority, a.name, a.deadline.Format(time.RFC3339), -left)
			}
			w.m.escalations.WithLabelValues(it.Priority, a.name).Inc()
			ch = append(ch, change{kind: "worklist.escalated", reason: reason,
				esc: &Escalation{Event: "worklist.escalated", Activity: a.name, Deadline: a.deadline, Time: now}})
		}
		overdue := (it.ClaimedAt.IsZero() && it.State == Scheduled && !now.Before(it.ClaimDue)) || !now.Before(it.ReportDue)
		if overdue && !it.Overdue {
			it.Overdue, it.Late = true, true
			ch = append(ch, change{kind: "worklist.overdue", reason: "deadline passed: " + it.nextDue().Format(time.RFC3339)})
		}
		if len(ch) == 0 {
			continue
		}
		it.Updated = now
		if err := w.st.put([]*Item{it}, "", 0); err != nil {
			w.log.Error("worklist: check not stored (retried)", "item", it.ID, "err", err)
			continue
		}
		w.items[it.ID] = it
		for i := range ch {
			ch[i].it = it
			if ch[i].esc != nil {
				ch[i].esc.Item = it.clone()
			}
		}
		changes = append(changes, ch...)
	}
	for _, c := range changes {
		w.emit(c.kind, c.it, c.user, c.reason)
		if c.kind == "worklist.escalated" {
			w.log.Warn("worklist: escalation", "item", c.it.ID, "study", c.it.StudyUID, "priority", c.it.Priority, "reader", c.it.Reader, "reason", c.reason)
		}
	}
	if len(changes) > 0 {
		w.refreshGauges()
	}
	w.mu.Unlock()
	if url := set.EscalationWebhook; url != "" {
		for _, c := range changes {
			if c.esc != nil {
				w.bg.Add(1)
				go func(e *Escalation) {
					defer w.bg.Done()
					w.webhook(url, e)
				}(c.esc)
			}
		}
	}
}

// webhookAttempts bounds the tries of an escalation webhook.
var webhookAttempts = 4

// webhook POSTs an escalation, retrying, and journals the outcome.
func (w *Worklist) webhook(url string, e *Escalation) {
	body, _ := json.Marshal(e)
	var lastErr error
	for attempt := 0; attempt < webhookAttempts; attempt++ {
		if attempt > 0 {
			select {
			case <-time.After(time.Duration(attempt*attempt) * 500 * time.Millisecond):
			case <-w.closed:
				lastErr = fmt.Errorf("stopped before attempt %d (last: %v)", attempt+1, lastErr)
				attempt = webhookAttempts
				continue
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			cancel()
			lastErr = err
			break
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := w.d.HTTPClient.Do(req)
		if err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
			if resp.StatusCode < 300 {
				cancel()
				w.m.webhooks.WithLabelValues("ok").Inc()
				w.journal(&journal.Event{Kind: "worklist.webhook", StudyUID: e.Item.StudyUID, Status: fmt.Sprint(resp.StatusCode),
					Reason: fmt.Sprintf("item %s: %s escalation: POST %s: %s (attempt %d)", e.Item.ID, e.Activity, redact(url), resp.Status, attempt+1)})
				return
			}
			err = fmt.Errorf("HTTP %s", resp.Status)
		}
		cancel()
		lastErr = err
	}
	w.m.webhooks.WithLabelValues("failed").Inc()
	w.log.Warn("worklist: escalation webhook failed", "item", e.Item.ID, "err", lastErr)
	w.journal(&journal.Event{Kind: "worklist.webhook", StudyUID: e.Item.StudyUID, Status: "failed",
		Reason: fmt.Sprintf("item %s: %s escalation: POST %s: %v", e.Item.ID, e.Activity, redact(url), lastErr)})
}

func redact(u string) string {
	if i := bytes.IndexByte([]byte(u), '?'); i >= 0 {
		return u[:i] + "?…"
	}
	return u
}

func (w *Worklist) journal(ev *journal.Event) {
	if w.d.Journal != nil {
		w.d.Journal.AppendAsync(ev)
	}
}

// itemData is the Data of worklist.* journal events.
type itemData struct {
	Item     string `json:"item"`
	Route    string `json:"route,omitempty"`
	Priority string `json:"priority"`
	State    string `json:"state"`
	Reader   string `json:"reader,omitempty"`
	Pool     string `json:"pool,omitempty"`
	Report   string `json:"report,omitempty"`
}

// emit journals a transition and pushes the item to the subscribers.
func (w *Worklist) emit(kind string, it *Item, user, reason string) {
	data, _ := json.Marshal(itemData{Item: it.ID, Route: it.Route, Priority: it.Priority, State: it.State, Reader: it.Reader, Pool: it.Pool, Report: it.ReportID})
	w.journal(&journal.Event{Kind: kind, User: user, StudyUID: it.StudyUID, Reason: reason, Data: data})
	w.publish(Event{Kind: kind, Item: it.clone()})
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
