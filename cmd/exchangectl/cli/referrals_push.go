package cli

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// defaultPushBatch is how many lines `referrals push` sends per call
// unless --batch-size says otherwise.
const defaultPushBatch = 100

// maxPushLine is the longest line `referrals push` reads; a longer one is
// rejected without being held in memory.
const maxPushLine = 1 << 20

// derivedIDPrefix starts the request id made for a line without one.
const derivedIDPrefix = "jsonl-"

// referralsPushOptions are the inputs of `referrals push`.
type referralsPushOptions struct {
	app *app
	// File is the path of the JSON Lines file, or "-" for standard input.
	File      string
	BatchSize int
}

const referralsPushLong = `Send referrals to other agencies from a JSON Lines file (FILE, or - for
standard input): one CreateReferralRequest per line in the API's protobuf
JSON form, for example

  {"requestId": "case-2026-0412", "referral": {"receiver": "agencies/iom",
   "service": {"niche": "NICHE_PSYCHOSOCIAL_COUNSELLING", "need": "..."}, ...}}

(on one line). The file is read as it is sent, --batch-size lines per
BatchCreateReferrals call, so it may be as large as you like; blank lines
are skipped. Each record is acknowledged on its own and one bad record never
stops the rest: a line that is not a valid CreateReferralRequest in JSON, or
is longer than 1 MiB, is reported as rejected with its line number and not
sent.

Request ids: give each line a requestId; your case system's record id is a
good one. A line without one gets an id derived from the line itself:
"jsonl-" and the first 40 hex digits of the SHA-256 of the line (without
surrounding whitespace). The exchange answers a request id it has seen with
the referral it stored first, so running the same file again, or the file
with some lines fixed, added or removed, never sends a referral twice: lines
sent before come back as duplicates. Two identical lines are one referral;
to send the same referral again on purpose, give it a new requestId.

Output: one line per record with its line number, request id, status
(accepted, duplicate or rejected), and the referral's name or, for a
rejection, the error code and the fields at fault. With --json, a JSON array
of the results, each with its "line". A count follows on stderr; on a
terminal, progress too.

Exit codes: 0 when every record was accepted or a duplicate; 6 when any was
rejected (fix those lines and run the same file again); the usual codes of
'exchangectl --help' when the exchange cannot be reached, after listing the
records sent so far (run the same file again to send the rest).

Only --timeout, when given, bounds the whole push; otherwise each batch has
30 seconds.`

// newReferralsPushCmd is `exchangectl referrals push`.
func newReferralsPushCmd(a *app, runF func(*referralsPushOptions) error) *cobra.Command {
	opts := &referralsPushOptions{app: a}
	cmd := &cobra.Command{
		Use:   "push -f FILE [--batch-size N]",
		Short: "Send referrals from a JSON Lines file (agencies)",
		Long:  referralsPushLong,
		Example: "  exchangectl referrals push -f referrals.jsonl\n" +
			"  export-cases --since yesterday | exchangectl referrals push -f - --json > results.json",
		Args:        exactArgs(),
		Annotations: longRunning,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.File == "" {
				return usageErrorf("-f FILE is required (- for standard input)")
			}
			if opts.BatchSize < 1 || opts.BatchSize > client.MaxReferralBatch {
				return usageErrorf("--batch-size %d: want 1 to %d", opts.BatchSize, client.MaxReferralBatch)
			}
			if runF != nil {
				return runF(opts)
			}
			return runReferralsPush(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVarP(&opts.File, "file", "f", "", "JSON Lines file of CreateReferralRequests, - for standard input (required)")
	cmd.Flags().IntVar(&opts.BatchSize, "batch-size", defaultPushBatch, fmt.Sprintf("lines per call, 1 to %d", client.MaxReferralBatch))
	return cmd
}

// pushRecord is one line of the file and what became of it.
type pushRecord struct {
	line int
	// req is the request to send; nil for a line rejected here.
	req    *exchangev1.CreateReferralRequest
	result *exchangev1.ReferralPushResult
}

// pushCounts tallies the results.
type pushCounts struct {
	total, accepted, duplicates, rejected int
	// queued counts the records kept in the outbox (--field-file).
	queued int
}

// pusher streams a file through BatchCreateReferrals.
type pusher struct {
	app       *app
	ctx       context.Context
	referrals *client.ReferralClient
	batchSize int
	out       *pushOutput
	progress  *progress

	pending []pushRecord
	// ids holds the request ids in pending, so that a repeated id goes in
	// a later batch (and comes back a duplicate) rather than being refused
	// for repeating one within its batch.
	ids    map[string]bool
	counts pushCounts
	// lastLine is the last line read.
	lastLine int
}

// runReferralsPush sends the file and prints a result per record.
func runReferralsPush(ctx context.Context, o *referralsPushOptions) error {
	var in io.Reader = o.app.env.Stdin
	name := "standard input"
	if o.File != "-" {
		f, err := os.Open(o.app.path(o.File))
		if err != nil {
			return err
		}
		defer f.Close()
		in, name = f, o.File
	}
	c, err := o.app.connectSealing(ctx)
	if err != nil {
		return err
	}
	p := &pusher{
		app:       o.app,
		ctx:       ctx,
		referrals: c.Referrals,
		batchSize: o.BatchSize,
		out:       &pushOutput{w: o.app.env.Stdout, json: o.app.global.JSON, array: jsonArray{w: o.app.env.Stdout}},
		progress:  o.app.newProgress(),
		ids:       map[string]bool{},
	}
	err = p.run(bufio.NewReaderSize(in, 64<<10))
	if endErr := p.out.end(); err == nil {
		err = endErr
	}
	p.progress.clear()
	n := p.counts
	tally := fmt.Sprintf("%d accepted, %d %s, %d rejected", n.accepted, n.duplicates, plural(n.duplicates, "duplicate", "duplicates"), n.rejected)
	if n.queued > 0 {
		tally += fmt.Sprintf(", %d queued (the exchange cannot be reached; they will be sent by 'exchangectl outbox send')", n.queued)
	}
	switch {
	case err != nil && n.total == 0:
		fmt.Fprintf(o.app.env.Stderr, "Nothing was sent from %s.\n", name)
	case err != nil:
		fmt.Fprintf(o.app.env.Stderr, "%d %s from %s before the error (%s); lines after %d were not sent. Run the same file again to send them: nothing is sent twice.\n",
			n.total, plural(n.total, "record", "records"), name, tally, p.lastSent())
	case n.total == 0:
		fmt.Fprintf(o.app.env.Stderr, "No records in %s.\n", name)
	default:
		fmt.Fprintf(o.app.env.Stderr, "%d %s from %s: %s.\n", n.total, plural(n.total, "record", "records"), name, tally)
	}
	if err != nil {
		return err
	}
	if n.rejected > 0 {
		return rejectedError{rejected: n.rejected, total: n.total}
	}
	return nil
}

// run reads every line, batching and sending as it goes.
func (p *pusher) run(r *bufio.Reader) error {
	for {
		line, tooLong, err := readLine(r, maxPushLine)
		if errors.Is(err, io.EOF) {
			return p.flush()
		}
		if err != nil {
			return err
		}
		p.lastLine++
		if err := p.add(p.lastLine, line, tooLong); err != nil {
			return err
		}
	}
}

// add takes one line of the file.
func (p *pusher) add(n int, line []byte, tooLong bool) error {
	if n == 1 {
		// A byte order mark, as some Windows tools write.
		line = bytes.TrimPrefix(line, []byte("\ufeff"))
	}
	line = bytes.TrimSpace(line)
	rec := pushRecord{line: n}
	switch {
	case tooLong:
		rec.result = localRejection("", fmt.Sprintf("line %d is longer than %d bytes", n, maxPushLine))
	case len(line) == 0:
		return nil
	default:
		req := &exchangev1.CreateReferralRequest{}
		if err := protojson.Unmarshal(line, req); err != nil {
			rec.result = localRejection("", fmt.Sprintf("line %d is not a CreateReferralRequest in JSON: %v", n, err))
			break
		}
		if req.GetRequestId() == "" {
			req.RequestId = derivedRequestID(line)
		}
		if p.ids[req.GetRequestId()] {
			if err := p.flush(); err != nil {
				return err
			}
		}
		p.ids[req.GetRequestId()] = true
		rec.req = req
	}
	p.pending = append(p.pending, rec)
	if len(p.pending) >= p.batchSize {
		return p.flush()
	}
	return nil
}

// derivedRequestID is the request id of a line that has none: "jsonl-" and
// the first 40 hex digits of the SHA-256 of the line.
func derivedRequestID(line []byte) string {
	sum := sha256.Sum256(line)
	return derivedIDPrefix + hex.EncodeToString(sum[:20])
}

// localRejection is the result of a line refused before sending.
func localRejection(requestID, message string) *exchangev1.ReferralPushResult {
	return &exchangev1.ReferralPushResult{
		RequestId: requestID,
		Status:    exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_REJECTED,
		Code:      "INVALID_ARGUMENT",
		Message:   message,
	}
}

// flush sends the pending records that are requests and prints every
// pending record's result, in line order.
func (p *pusher) flush() error {
	if len(p.pending) == 0 {
		return nil
	}
	var reqs []*exchangev1.CreateReferralRequest
	var at []int
	for i, rec := range p.pending {
		if rec.req != nil {
			reqs = append(reqs, rec.req)
			at = append(at, i)
		}
	}
	if len(reqs) > 0 {
		ctx, cancel := callContext(p.ctx)
		defer cancel()
		results, err := p.referrals.BatchCreate(ctx, reqs)
		if client.IsQueued(err) {
			results = queuedResults(reqs, err)
		} else if err != nil {
			return err
		}
		if len(results) != len(reqs) {
			return status.Errorf(codes.Internal, "the exchange answered %d results for %d referrals", len(results), len(reqs))
		}
		for j, res := range results {
			p.pending[at[j]].result = res
		}
	}
	p.progress.clear()
	for _, rec := range p.pending {
		p.count(rec.result)
		if err := p.out.write(rec); err != nil {
			return err
		}
	}
	p.pending = p.pending[:0]
	clear(p.ids)
	n := p.counts
	p.progress.show("Sent %d records through line %d: %d accepted, %d duplicates, %d rejected...",
		n.total, p.lastLine, n.accepted, n.duplicates, n.rejected)
	return nil
}

// lastSent is the last line whose result was printed.
func (p *pusher) lastSent() int {
	if len(p.pending) > 0 {
		return p.pending[0].line - 1
	}
	return p.lastLine
}

// count adds a result to the tally.
func (p *pusher) count(res *exchangev1.ReferralPushResult) {
	p.counts.total++
	if res.GetCode() == client.ReasonQueued {
		p.counts.queued++
		return
	}
	switch res.GetStatus() {
	case exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_ACCEPTED:
		p.counts.accepted++
	case exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_DUPLICATE:
		p.counts.duplicates++
	default:
		p.counts.rejected++
	}
}

// readLine returns the next line of r without its end of line, and
// io.EOF after the last. A line longer than max is read to its end but not
// kept: tooLong reports it, and line is nil.
func readLine(r *bufio.Reader, max int) (line []byte, tooLong bool, err error) {
	for {
		chunk, err := r.ReadSlice('\n')
		if !tooLong {
			if len(line)+len(chunk) > max+1 { // +1 for the '\n'
				line, tooLong = nil, true
			} else {
				line = append(line, chunk...)
			}
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(line) == 0 && !tooLong {
				return nil, false, io.EOF
			}
			return line, tooLong, nil
		case err != nil:
			return nil, false, err
		}
		return bytes.TrimSuffix(line, []byte("\n")), tooLong, nil
	}
}

// pushOutput prints results as they come: a table for people, or a JSON
// array written element by element.
type pushOutput struct {
	w     io.Writer
	json  bool
	array jsonArray
	// started is set once the table's header is written.
	started bool
}

// write prints one record's result.
func (o *pushOutput) write(rec pushRecord) error {
	if o.json {
		return o.writeJSON(rec)
	}
	if !o.started {
		o.started = true
		if _, err := fmt.Fprintf(o.w, "%-6s  %-46s  %-9s  %s\n", "LINE", "REQUEST ID", "STATUS", "RESULT"); err != nil {
			return err
		}
	}
	res := rec.result
	outcome := res.GetReferral()
	statusName := pushStatusNames.name(protoreflect.EnumNumber(res.GetStatus()))
	switch {
	case res.GetCode() == client.ReasonQueued:
		statusName, outcome = "queued", res.GetMessage()
	case res.GetStatus() != exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_ACCEPTED &&
		res.GetStatus() != exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_DUPLICATE:
		outcome = rejectionText(res)
	}
	_, err := fmt.Fprintf(o.w, "%-6d  %-46s  %-9s  %s\n", rec.line, orDash(res.GetRequestId()), statusName, outcome)
	return err
}

// rejectionText is a rejection in one line: the code, then each field at
// fault with what is wrong and what the exchange left out, or the message
// when no field is named.
func rejectionText(res *exchangev1.ReferralPushResult) string {
	code := cmp.Or(res.GetCode(), "REJECTED")
	if len(res.GetViolations()) == 0 {
		return code + " " + oneLine(res.GetMessage())
	}
	var parts []string
	for _, v := range res.GetViolations() {
		parts = append(parts, v.GetField()+": "+oneLine(v.GetDescription()))
	}
	if more := unlistedText(res.GetUnlistedViolations(), res.GetCheckedToFirstViolation()); more != "" {
		parts = append(parts, more)
	}
	return code + " " + strings.Join(parts, "; ")
}

// oneLine replaces line breaks so that a message keeps to its row.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// writeJSON writes one element of the JSON array, formatted as
// printJSONList formats a whole array.
func (o *pushOutput) writeJSON(rec pushRecord) error {
	res := proto.CloneOf(rec.result)
	res.Index = 0 // the position in a batch; "line" says where it is
	b, err := protojson.Marshal(res)
	if err != nil {
		return err
	}
	obj := []byte(`{"line":` + strconv.Itoa(rec.line))
	if inner := bytes.TrimSpace(b[1:]); len(inner) > 1 {
		obj = append(append(obj, ','), inner...)
	} else {
		obj = append(obj, '}')
	}
	return o.array.add(obj)
}

// end closes the JSON array ("[]" when empty).
func (o *pushOutput) end() error {
	if !o.json {
		return nil
	}
	return o.array.end()
}

// plural picks the singular or plural form for n.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// queuedResults are the results of a batch the outbox kept (err says
// which entry): each request queued, with no status yet.
func queuedResults(reqs []*exchangev1.CreateReferralRequest, err error) []*exchangev1.ReferralPushResult {
	id, _ := client.QueuedEntry(err)
	out := make([]*exchangev1.ReferralPushResult, len(reqs))
	for i, r := range reqs {
		out[i] = &exchangev1.ReferralPushResult{Index: int32(i), RequestId: r.GetRequestId(), Code: client.ReasonQueued,
			Message: fmt.Sprintf("in outbox entry %d", id)}
	}
	return out
}
