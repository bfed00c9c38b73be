package server

// What a batch's answer lists.
//
// A batch (BatchCreateReferrals, WriteDatasetRows) is answered item by
// item, each rejected item with the fields at fault. Every item kept
// within its bounds, it can still break many rules at once (a row of ten
// unknown categories and fifty values of unknown measures breaks 62), and
// listing them all made the answer cost far more than the request: 4,000
// rows of ten unknown categories and fifty empty values (2 MB) made the
// exchange allocate 384 MiB and answer with 15.6 MB, which a default
// client refuses to read; 7,500 rows, 720 MiB and 29 MB.
//
// So one batch shares one budget of violations (violationBudget): every
// rejected item lists its first violation, so that each is reported with
// the field at fault, and the whole answer lists at most
// maxExtraBatchViolations more, each item's in order until the budget is
// spent, with the count of those it leaves out (unlisted_violations).
// Once the budget is spent, the remaining items are checked only up to
// their first violation (protovalidate fail-fast, then the dataset's
// schema), and marked so (checked_to_first_violation): nothing is built
// that the answer would not carry. Each field path and description listed
// is cut at maxBatchViolationTextBytes, so that an item's first violation
// takes at most a few hundred bytes of the answer.

import (
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

const (
	// maxExtraBatchViolations is the most violations a batch's answer
	// lists beyond the first of each rejected item.
	maxExtraBatchViolations = 100
	// maxBatchViolationTextBytes is where a batch's answer cuts a field
	// path or a description.
	maxBatchViolationTextBytes = 128
)

// violationBudget is what one batch's answer may still list beyond the
// first violation of each rejected item.
type violationBudget struct {
	extra int
}

// newViolationBudget is the budget of a new batch.
func newViolationBudget() *violationBudget {
	return &violationBudget{extra: maxExtraBatchViolations}
}

// firstOnly says the budget is spent: the remaining items are checked only
// up to their first violation.
func (b *violationBudget) firstOnly() bool { return b.extra <= 0 }

// list returns the violations an item's result lists, of the found ones
// (at(i) gives the field and description of the i-th, in order) among
// total, and how many it leaves out; the first is always listed, and the
// others as long as the budget lasts, which they spend.
func (b *violationBudget) list(found, total int, at func(i int) (field, description string)) ([]*exchangev1.FieldViolation, int32) {
	n := min(found, 1+max(b.extra, 0))
	if n > 1 {
		b.extra -= n - 1
	}
	out := make([]*exchangev1.FieldViolation, n)
	for i := range out {
		field, description := at(i)
		out[i] = &exchangev1.FieldViolation{Field: cutTextAt(field, maxBatchViolationTextBytes), Description: cutTextAt(description, maxBatchViolationTextBytes)}
	}
	return out, int32(max(total, found) - n)
}
