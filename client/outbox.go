package client

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/alltogether/exchange/client/fieldfile"
	"github.com/alltogether/exchange/pki"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// ReasonQueued is the ErrorInfo reason of the error a write returns when
// the outbox kept it to send later (see IsQueued).
const ReasonQueued = "QUEUED"

// DefaultAttemptTimeout bounds each send of an entry by Outbox.Send
// unless Outbox.AttemptTimeout says otherwise: long enough for a slow
// line, short enough that a server that accepts and never answers does
// not hold the whole outbox.
const DefaultAttemptTimeout = 20 * time.Second

// Outbox keeps the writes made while the exchange cannot be reached in the
// field file (Config.FieldFile) and sends them, in order, when it can be.
//
// With a field file configured, every covered write is first appended to
// the outbox (one durable commit), then sent; it leaves the outbox when
// the exchange has answered it. The covered writes are referral Create,
// BatchCreate, Forward and the state verbs (Acknowledge, Accept, Reject,
// Start, Complete, Cancel, RevokeConsent), dataset row writes
// (Datasets.Write) and plan applies (Plans.Apply, except dry runs). A
// write the exchange cannot be reached for (UNAVAILABLE,
// DEADLINE_EXCEEDED, a broken connection, a cancelled call) stays in the
// outbox and the call returns an error for which IsQueued is true: the
// write is not lost and must not be made again; Send sends it. A write
// for a referral, dataset or agency's plans that has an earlier entry in
// the outbox waits behind it, so writes to one resource reach the
// exchange in the order they were made.
//
// A write answered at once, with success or an error, is the caller's as
// without an outbox: it leaves the outbox and the call returns the
// answer. A write the exchange refuses when Send sends it later (consent
// no longer valid, a stale etag, a record or row it rejects) is kept,
// marked rejected with the exchange's code and message, for a person to
// resolve and Drop; it holds back later writes to the same resource.
//
// Exactly once: each entry is the request as it went on the wire, with
// its request id, so a create or forward sent twice is stored once (the
// exchange answers a repeated id with its first result). A state change
// resent after an answer that never came, and refused as stale or in the
// wrong state, is taken as made when the referral's history shows that
// change by this agency (or, for RevokeConsent, the consent revoked). A
// row written again as it is stored changes nothing at the exchange, and
// a deletion resent after a lost answer finds the row already deleted,
// which counts as done. An apply is declarative: sent again, it changes
// nothing.
//
// Identifying details are sealed before a referral reaches the outbox
// when the client has a key ring (Config.KeyRingFile), so the field file
// never holds them in clear. Sealing needs the receiver's key: the field
// file keeps the key of each receiver when it is fetched (and checked
// against its pin) while the exchange can be reached, and a referral made
// offline is sealed to the kept key. A receiver whose key was never
// fetched on this machine cannot be sealed to offline: the call fails and
// nothing is queued (FetchKeys fetches keys ahead).
type Outbox struct {
	file *fieldfile.File
	// owned says the outbox opened the file (Config.FieldFile) and closes
	// it; a file the caller handed over (Config.Field) is the caller's.
	owned bool
	conn  *grpc.ClientConn
	// self is the caller's agency, "agencies/{id}", or "" for the
	// secretariat.
	self string
	// sealer fetches and keeps receivers' keys, when the client seals.
	sealer *sealer

	// AttemptTimeout bounds each send of an entry by Send; zero means
	// DefaultAttemptTimeout.
	AttemptTimeout time.Duration

	mu    sync.Mutex
	locks map[string]*resourceLock
}

// resourceLock serialises the sends for one resource within a process.
type resourceLock struct {
	mu    sync.Mutex
	users int
}

// lock holds resource's lock until the returned function is called.
func (o *Outbox) lock(resource string) func() {
	o.mu.Lock()
	l := o.locks[resource]
	if l == nil {
		l = &resourceLock{}
		o.locks[resource] = l
	}
	l.users++
	o.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		o.mu.Lock()
		if l.users--; l.users == 0 {
			delete(o.locks, resource)
		}
		o.mu.Unlock()
	}
}

// File is the field file the outbox keeps its entries in.
func (o *Outbox) File() *fieldfile.File { return o.file }

// Entries returns the entries waiting in the outbox, oldest first: pending
// ones and rejected ones.
func (o *Outbox) Entries() ([]fieldfile.Entry, error) { return o.file.Entries() }

// Drop takes the entry with the given id out of the outbox without
// sending it, once a person has resolved it, and records the drop in the
// field file. It returns the entry dropped. Later entries for the same
// resource are then sent by the next Send.
func (o *Outbox) Drop(id uint64) (fieldfile.Entry, error) {
	return o.file.Drop(id)
}

// SendReport says what one Send did.
type SendReport struct {
	// Sent are the entries the exchange took (or, for a state change whose
	// first answer was lost, had already taken), in the order sent.
	Sent []fieldfile.Entry
	// Rejected are the entries the exchange refused in this Send, with
	// its reason, kept in the outbox.
	Rejected []fieldfile.Entry
	// Unreachable is the error that stopped Send because the exchange
	// could not be reached, or nil.
	Unreachable error
	// Left are the entries still in the outbox after Send: those rejected
	// now or before, those held behind them, and those not sent because
	// the exchange could not be reached.
	Left []fieldfile.Entry
}

// Send sends the outbox's entries, oldest first; the entries for one
// resource are sent in order, each only after the one before it has left
// the outbox. An entry already rejected, and every later entry for its
// resource, is skipped. Send stops at the first entry for which the
// exchange cannot be reached, and reports it in Unreachable. It returns
// an error only when the field file fails.
func (o *Outbox) Send(ctx context.Context) (SendReport, error) {
	var rep SendReport
	entries, err := o.file.Entries()
	if err != nil {
		return rep, err
	}
	if len(entries) > 0 {
		o.reconnect(ctx)
	}
	held := map[string]bool{}
	for _, e := range entries {
		if held[e.Resource] || rep.Unreachable != nil {
			continue
		}
		if e.State == fieldfile.Rejected {
			held[e.Resource] = true
			continue
		}
		if err := ctx.Err(); err != nil {
			rep.Unreachable = err
			break
		}
		unlock := o.lock(e.Resource)
		// Read it again under the lock: a write of this process may have
		// sent it meanwhile.
		cur, err := o.file.Entry(e.ID)
		if errors.Is(err, fieldfile.ErrNoEntry) {
			unlock()
			continue
		}
		if err == nil && cur.State == fieldfile.Rejected {
			unlock()
			held[e.Resource] = true
			continue
		}
		if err != nil {
			unlock()
			return rep, err
		}
		res, err := o.sendEntry(ctx, cur)
		unlock()
		if err != nil {
			return rep, err
		}
		switch res.outcome {
		case outcomeSent:
			rep.Sent = append(rep.Sent, res.entry)
		case outcomeRejected:
			rep.Rejected = append(rep.Rejected, res.entry)
			held[e.Resource] = true
		case outcomeUnreachable:
			rep.Unreachable = res.err
		}
	}
	rep.Left, err = o.file.Entries()
	return rep, err
}

// FetchKeys fetches the encryption key of each agency from the directory,
// checks it against its pin (pinning it on first use) and keeps it in the
// field file, so that referrals to these agencies can be sealed while the
// exchange cannot be reached. It needs a key ring (Config.KeyRingFile).
func (o *Outbox) FetchKeys(ctx context.Context, agencies ...string) error {
	if o.sealer == nil {
		return status.Error(codes.FailedPrecondition, "client: the client has no key ring (Config.KeyRingFile): it seals nothing, so it keeps no keys")
	}
	for _, a := range agencies {
		if _, err := o.sealer.recipientOf(ctx, a); err != nil {
			return err
		}
	}
	return nil
}

// outcome is what became of one send of an entry.
type outcome int

const (
	outcomeSent outcome = iota
	outcomeRejected
	outcomeUnreachable
)

// sendResult is an entry as it stands after one send.
type sendResult struct {
	outcome outcome
	entry   fieldfile.Entry
	err     error
}

// resending marks a context whose calls the outbox makes itself, which
// its interceptor passes through.
type resending struct{}

// sendEntry sends e once from the outbox and records the outcome in the
// field file: removed when sent, kept with the error when the exchange
// cannot be reached, marked rejected otherwise. The error is the field
// file's only.
func (o *Outbox) sendEntry(ctx context.Context, e fieldfile.Entry) (sendResult, error) {
	w, ok := coveredWrites[e.Method]
	if !ok {
		return sendResult{}, fmt.Errorf("client: outbox entry %d is for %s, which this client does not send from an outbox", e.ID, e.Method)
	}
	req := w.newRequest()
	if err := proto.Unmarshal(e.Request, req); err != nil {
		return sendResult{}, fmt.Errorf("client: outbox entry %d: %w", e.ID, err)
	}
	now := time.Now().UTC()
	if err := o.file.Update(e.ID, func(x *fieldfile.Entry) { x.Attempts++; x.LastAttempt = now }); err != nil {
		return sendResult{}, err
	}
	e.Attempts++
	e.LastAttempt = now
	// An earlier attempt may have reached the exchange with its answer
	// lost: each earlier attempt either did or could not be sent, since an
	// answered one would have settled the entry.
	resent := e.Attempts > 1
	timeout := o.AttemptTimeout
	if timeout <= 0 {
		timeout = DefaultAttemptTimeout
	}
	actx, cancel := context.WithTimeout(context.WithValue(ctx, resending{}, true), timeout)
	reply := w.newReply()
	err := o.conn.Invoke(actx, e.Method, req, reply)
	cancel()
	switch {
	case err == nil:
		if problems := w.problems(req, reply, resent); len(problems) > 0 {
			return o.reject(e, "REJECTED_IN_PART", strings.Join(problems, "; "))
		}
		return sendResult{outcome: outcomeSent, entry: e}, o.file.Remove(e.ID)
	case unreachable(err):
		msg := status.Convert(err).Message()
		e.LastError = msg
		if uerr := o.file.Update(e.ID, func(x *fieldfile.Entry) { x.LastError = msg }); uerr != nil {
			return sendResult{}, uerr
		}
		return sendResult{outcome: outcomeUnreachable, entry: e, err: err}, nil
	}
	if resent && w.target != nil && o.alreadyMade(ctx, w, req, err) {
		return sendResult{outcome: outcomeSent, entry: e}, o.file.Remove(e.ID)
	}
	return o.reject(e, codeNames[status.Code(err)], reasonText(err))
}

// reject marks e rejected with code (a gRPC code's API name, or
// REJECTED_IN_PART for an answer that refused some records, rows or plans
// of the write) and message.
func (o *Outbox) reject(e fieldfile.Entry, code, message string) (sendResult, error) {
	e.State, e.Code, e.LastError = fieldfile.Rejected, code, message
	err := o.file.Update(e.ID, func(x *fieldfile.Entry) {
		x.State, x.Code, x.LastError = fieldfile.Rejected, e.Code, message
	})
	return sendResult{outcome: outcomeRejected, entry: e}, err
}

// codeNames spells gRPC codes as the API does.
var codeNames = map[codes.Code]string{
	codes.OK: "OK", codes.Canceled: "CANCELLED", codes.Unknown: "UNKNOWN", codes.InvalidArgument: "INVALID_ARGUMENT",
	codes.DeadlineExceeded: "DEADLINE_EXCEEDED", codes.NotFound: "NOT_FOUND", codes.AlreadyExists: "ALREADY_EXISTS",
	codes.PermissionDenied: "PERMISSION_DENIED", codes.ResourceExhausted: "RESOURCE_EXHAUSTED",
	codes.FailedPrecondition: "FAILED_PRECONDITION", codes.Aborted: "ABORTED", codes.OutOfRange: "OUT_OF_RANGE",
	codes.Unimplemented: "UNIMPLEMENTED", codes.Internal: "INTERNAL", codes.Unavailable: "UNAVAILABLE",
	codes.DataLoss: "DATA_LOSS", codes.Unauthenticated: "UNAUTHENTICATED",
}

// reasonText is err's message, with its ErrorInfo reason and field
// violations when it has them.
func reasonText(err error) string {
	msg := status.Convert(err).Message()
	if r := Reason(err); r != "" && !strings.Contains(msg, r) {
		msg = r + ": " + msg
	}
	for _, v := range FieldViolations(err) {
		msg += "; " + v.GetField() + ": " + v.GetDescription()
	}
	return msg
}

// alreadyMade reports whether the state change req, refused with err on a
// resend, had been made by an earlier attempt whose answer was lost: the
// referral's history shows the change by this agency.
func (o *Outbox) alreadyMade(ctx context.Context, w coveredWrite, req proto.Message, err error) bool {
	switch status.Code(err) {
	case codes.FailedPrecondition, codes.Aborted:
	default:
		return false
	}
	named, ok := req.(interface{ GetName() string })
	if !ok || o.self == "" {
		return false
	}
	rctx, cancel := context.WithTimeout(context.WithValue(ctx, resending{}, true), DefaultAttemptTimeout)
	defer cancel()
	resp, gerr := exchangev1.NewReferralServiceClient(o.conn).GetReferral(rctx, &exchangev1.GetReferralRequest{Name: named.GetName()})
	if gerr != nil {
		return false
	}
	return w.target(resp.GetReferral(), o.self)
}

// unreachable reports whether err means the exchange may not have had
// the call: it could not be reached, did not answer in time, or the call
// was cancelled on this side.
func unreachable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.ResourceExhausted:
		return true
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// IsQueued reports whether err says the write was kept in the outbox, to
// be sent by Outbox.Send: it is not lost, and making it again would make
// it twice (for a write without a request id of its own).
func IsQueued(err error) bool { return Reason(err) == ReasonQueued }

// QueuedEntry returns the outbox entry id of a queued write's error, and
// false for any other error.
func QueuedEntry(err error) (uint64, bool) {
	info := errorInfo(err)
	if info == nil || info.GetReason() != ReasonQueued {
		return 0, false
	}
	var id uint64
	if _, serr := fmt.Sscan(info.GetMetadata()["entry"], &id); serr != nil {
		return 0, false
	}
	return id, true
}

// queuedError is the error of a write kept in the outbox: UNAVAILABLE
// with reason QUEUED and the entry's id in the metadata.
func queuedError(id, behind uint64, cause error) error {
	var msg string
	if behind != 0 {
		msg = fmt.Sprintf("queued in the outbox as entry %d, behind entry %d for the same resource", id, behind)
		if cause != nil {
			msg += fmt.Sprintf(" (the exchange cannot be reached: %s)", status.Convert(cause).Message())
		}
	} else {
		msg = fmt.Sprintf("queued in the outbox as entry %d: the exchange cannot be reached (%s)", id, status.Convert(cause).Message())
	}
	st := status.New(codes.Unavailable, msg)
	withInfo, err := st.WithDetails(&errdetails.ErrorInfo{Reason: ReasonQueued, Domain: ErrorDomain,
		Metadata: map[string]string{"entry": fmt.Sprint(id)}})
	if err != nil {
		return st.Err()
	}
	return withInfo.Err()
}

// interceptor puts the covered writes through the outbox.
func (o *Outbox) interceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		w, ok := coveredWrites[method]
		if !ok || ctx.Value(resending{}) != nil {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		if v, ok := req.(validateOnlyCarrier); ok && v.GetValidateOnly() {
			return invoker(ctx, method, req, reply, cc, opts...) // a dry run writes nothing
		}
		m, ok := req.(proto.Message)
		if !ok {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			return status.Errorf(codes.Internal, "client: outbox: %v", err)
		}
		resource := w.resource(m)
		unlock := o.lock(resource)
		defer unlock()
		e := &fieldfile.Entry{Method: method, Resource: resource, Kind: w.kind(m), Request: b}
		ahead, err := o.file.Append(e)
		if err != nil {
			return status.Errorf(codes.Internal, "client: nothing was sent: the outbox could not keep the write: %v", err)
		}
		if ahead != 0 {
			earlier, err := o.file.EntriesFor(resource)
			if err != nil {
				return status.Errorf(codes.Internal, "client: outbox: %v", err)
			}
			for _, x := range earlier {
				if x.ID >= e.ID {
					break
				}
				if x.State == fieldfile.Rejected {
					return queuedError(e.ID, x.ID, nil)
				}
				res, err := o.sendEntry(ctx, x)
				if err != nil {
					return status.Errorf(codes.Internal, "client: outbox: %v", err)
				}
				if res.outcome != outcomeSent {
					return queuedError(e.ID, x.ID, res.err)
				}
			}
			now := time.Now().UTC()
			if err := o.file.Update(e.ID, func(x *fieldfile.Entry) { x.Attempts, x.LastAttempt = 1, now }); err != nil {
				return status.Errorf(codes.Internal, "client: outbox: %v", err)
			}
		}
		err = invoker(ctx, method, req, reply, cc, opts...)
		if err != nil && unreachable(err) {
			msg := status.Convert(err).Message()
			if uerr := o.file.Update(e.ID, func(x *fieldfile.Entry) { x.LastError = msg }); uerr != nil {
				return status.Errorf(codes.Internal, "client: outbox: %v (after %v)", uerr, err)
			}
			return queuedError(e.ID, 0, err)
		}
		// Answered: the answer is the caller's.
		if rerr := o.file.Remove(e.ID); rerr != nil && err == nil {
			return status.Errorf(codes.Internal, "client: the exchange took the write, but the outbox could not forget it (it will be sent again, harmlessly): %v", rerr)
		}
		return err
	}
}

// openOutbox opens the field file at path for the agency (or
// secretariat) whose certificate is certFile.
func openOutbox(path, certFile string) (*Outbox, error) {
	f, err := fieldfile.Open(path)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	o := newOutbox(f, certFile)
	o.owned = true
	return o, nil
}

// newOutbox keeps its writes in the open field file f, for the agency
// whose certificate is certFile.
func newOutbox(f *fieldfile.File, certFile string) *Outbox {
	self := ""
	if pemBytes, err := os.ReadFile(certFile); err == nil {
		if cert, err := pki.ParseCertPEM(pemBytes); err == nil {
			if id, err := pki.IdentityFromCert(cert); err == nil && id.Role == pki.RoleAgency {
				self = AgencyName(id.AgencyID)
			}
		}
	}
	return &Outbox{file: f, self: self, locks: map[string]*resourceLock{}}
}

// close closes the field file if the outbox opened it; a nil Outbox has
// nothing to close.
func (o *Outbox) close() error {
	if o == nil || !o.owned {
		return nil
	}
	return o.file.Close()
}

// reconnect makes a connection that failed before try again now rather
// than after its backoff (a line that came back is used at once), and
// waits up to a second for the attempt to begin, so that the first send
// meets the new attempt rather than the old failure.
func (o *Outbox) reconnect(ctx context.Context) {
	o.conn.ResetConnectBackoff()
	o.conn.Connect()
	wctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	for s := o.conn.GetState(); s == connectivity.TransientFailure || s == connectivity.Idle; s = o.conn.GetState() {
		if !o.conn.WaitForStateChange(wctx, s) {
			return
		}
	}
}
