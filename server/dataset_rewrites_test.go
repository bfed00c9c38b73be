package server

import (
	"testing"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// A WriteDatasetRows resent after its answer was lost (a field office's
// outbox sends it again) carries the same rows: the resend must leave no
// trace, no new revision and no second change for watchers and
// incremental pulls, so that each row arrives once. A row whose values
// did change is still written at a new revision.
func TestRewritingRowsAsStoredChangesNothing(t *testing.T) {
	t.Parallel()
	_, _, iom, _, escap, _ := jointDataset(t)
	const name = "agencies/ilo/datasets/returns"
	rows := []*exchangev1.Row{row("2026-01", "KH-12", "female", 3), row("2026-01", "KH-12", "male", 4)}
	first := write(t, iom, name, rows...)
	if first.GetAccepted() != 2 || first.GetRevision() == 0 {
		t.Fatalf("first write = %v, want both accepted at a revision", first)
	}
	again := write(t, iom, name, rows...)
	if again.GetAccepted() != 2 || again.GetRejected() != 0 {
		t.Fatalf("resend = %v, want both accepted", again)
	}
	if again.GetRevision() != first.GetRevision() {
		t.Fatalf("resend answered revision %d, want %d: the rows are where the first write put them", again.GetRevision(), first.GetRevision())
	}
	changes, _ := pullAll(t, escap, &exchangev1.PullDatasetRowsRequest{Dataset: name, SinceRevision: first.GetRevision()})
	if len(changes) != 0 {
		t.Fatalf("the resend shows as %d changes after revision %d, want none: %v", len(changes), first.GetRevision(), changes)
	}

	// One row changed, one resent as it is: only the changed one moves.
	changed := write(t, iom, name, row("2026-01", "KH-12", "female", 5), rows[1])
	if changed.GetAccepted() != 2 || changed.GetRevision() <= first.GetRevision() {
		t.Fatalf("changed write = %v, want both accepted at a later revision", changed)
	}
	changes, _ = pullAll(t, escap, &exchangev1.PullDatasetRowsRequest{Dataset: name, SinceRevision: first.GetRevision()})
	if len(changes) != 1 || changes[0].GetCategories()["sex"] != "female" || changes[0].GetValues()["cases"].GetIntValue() != 5 {
		t.Fatalf("changes after the changed write = %v, want only the female row with 5 cases", changes)
	}

	// A deleted row written again with its old values is written, not
	// mistaken for the stored tombstone.
	del := &exchangev1.WriteDatasetRowsRequest{Dataset: name, Writes: []*exchangev1.RowWrite{{Row: rows[1], Delete: true}}}
	if _, err := iom.datasets().WriteDatasetRows(t.Context(), del); err != nil {
		t.Fatal(err)
	}
	back := write(t, iom, name, rows[1])
	if back.GetAccepted() != 1 || back.GetRevision() == 0 {
		t.Fatalf("rewrite of a deleted row = %v, want it written at a revision", back)
	}
}
