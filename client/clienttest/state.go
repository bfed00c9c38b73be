package clienttest

import (
	"cmp"
	"crypto/rand"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"sync"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// defaultPageSize is the fake's page size when a request asks for 0.
const defaultPageSize = 50

// Id syntax, as in the .proto files.
var (
	agencyIDPattern       = regexp.MustCompile(`^[a-z][a-z0-9-]{1,38}[a-z0-9]$`)
	workingGroupIDPattern = regexp.MustCompile(`^[a-z][a-z0-9-]{1,62}[a-z0-9]$`)
	topicPattern          = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
)

// state is the fake's in-memory directory, certificate, referral and
// dataset store.
type state struct {
	pki *PKI

	mu            sync.Mutex
	revision      int
	pageSize      int
	agencies      map[string]*exchangev1.Agency
	focalPoints   map[string]*exchangev1.FocalPoint
	workingGroups map[string]*exchangev1.WorkingGroup
	locations     map[string]*exchangev1.Location
	certificates  map[string]*exchangev1.Certificate
	// requests maps method and request_id to the first response.
	requests map[string]proto.Message

	referrals map[string]*exchangev1.Referral
	// changes is the referral change log, oldest first, from after
	// compacted.
	changes   []referralChange
	compacted int64
	// referralsChanged is closed and replaced at each referral change.
	referralsChanged chan struct{}

	datasets map[string]*fakeDataset
	// roundingKey keys the public aggregate view's rounding draws.
	roundingKey []byte
	// datasetsChanged is closed and replaced at each row write.
	datasetsChanged chan struct{}

	// plans is the PlanService store (plans.go).
	plans planState
}

// newState returns an empty store whose certificates p signs.
func newState(p *PKI) *state {
	return &state{
		pki:           p,
		agencies:      map[string]*exchangev1.Agency{},
		focalPoints:   map[string]*exchangev1.FocalPoint{},
		workingGroups: map[string]*exchangev1.WorkingGroup{},
		locations:     map[string]*exchangev1.Location{},
		certificates:  map[string]*exchangev1.Certificate{},
		requests:      map[string]proto.Message{},

		referrals:        map[string]*exchangev1.Referral{},
		referralsChanged: make(chan struct{}),

		datasets:        map[string]*fakeDataset{},
		roundingKey:     randomKey(),
		datasetsChanged: make(chan struct{}),
	}
}

// SetPageSize sets the page size used when a List request asks for the
// default (page_size 0), so that tests can walk several pages with few
// resources.
func (s *Server) SetPageSize(n int) {
	s.state.mu.Lock()
	defer s.state.mu.Unlock()
	s.state.pageSize = n
}

// PutAgency stores a copy of a as is (a.Name must be set), replacing any
// agency of that name, and returns the stored copy with a fresh etag.
func (s *Server) PutAgency(a *exchangev1.Agency) *exchangev1.Agency {
	st := s.state
	st.mu.Lock()
	defer st.mu.Unlock()
	a = proto.CloneOf(a)
	if a.State == exchangev1.AgencyState_AGENCY_STATE_UNSPECIFIED {
		a.State = exchangev1.AgencyState_AGENCY_STATE_ACTIVE
	}
	a.Etag = st.nextEtag()
	st.agencies[a.Name] = a
	return proto.CloneOf(a)
}

// PutFocalPoint stores a copy of fp as is (fp.Name must be set).
func (s *Server) PutFocalPoint(fp *exchangev1.FocalPoint) *exchangev1.FocalPoint {
	st := s.state
	st.mu.Lock()
	defer st.mu.Unlock()
	fp = proto.CloneOf(fp)
	fp.Etag = st.nextEtag()
	st.focalPoints[fp.Name] = fp
	return proto.CloneOf(fp)
}

// PutWorkingGroup stores a copy of wg as is (wg.Name must be set).
func (s *Server) PutWorkingGroup(wg *exchangev1.WorkingGroup) *exchangev1.WorkingGroup {
	st := s.state
	st.mu.Lock()
	defer st.mu.Unlock()
	wg = proto.CloneOf(wg)
	wg.Etag = st.nextEtag()
	st.workingGroups[wg.Name] = wg
	return proto.CloneOf(wg)
}

// PutLocation stores a copy of l (l.Name and l.Code must be set).
func (s *Server) PutLocation(l *exchangev1.Location) {
	s.state.mu.Lock()
	defer s.state.mu.Unlock()
	s.state.locations[l.Name] = proto.CloneOf(l)
}

// Agencies returns copies of the stored agencies in name order.
func (s *Server) Agencies() []*exchangev1.Agency {
	s.state.mu.Lock()
	defer s.state.mu.Unlock()
	return sortedValues(s.state.agencies, func(a, b *exchangev1.Agency) int { return cmp.Compare(a.Name, b.Name) })
}

// FocalPoints returns copies of the stored focal points in name order.
func (s *Server) FocalPoints() []*exchangev1.FocalPoint {
	s.state.mu.Lock()
	defer s.state.mu.Unlock()
	return sortedValues(s.state.focalPoints, func(a, b *exchangev1.FocalPoint) int { return cmp.Compare(a.Name, b.Name) })
}

// WorkingGroups returns copies of the stored working groups in name order.
func (s *Server) WorkingGroups() []*exchangev1.WorkingGroup {
	s.state.mu.Lock()
	defer s.state.mu.Unlock()
	return sortedValues(s.state.workingGroups, func(a, b *exchangev1.WorkingGroup) int { return cmp.Compare(a.Name, b.Name) })
}

// Certificates returns copies of the stored certificates in name order.
func (s *Server) Certificates() []*exchangev1.Certificate {
	s.state.mu.Lock()
	defer s.state.mu.Unlock()
	return sortedValues(s.state.certificates, func(a, b *exchangev1.Certificate) int { return cmp.Compare(a.Name, b.Name) })
}

// nextEtag returns a new etag. The caller holds mu.
func (st *state) nextEtag() string {
	st.revision++
	return strconv.Itoa(st.revision)
}

// nextID returns a new 26-character focal point id. The caller holds mu.
func (st *state) nextID() string {
	st.revision++
	return fmt.Sprintf("01j%023d", st.revision)
}

// replay returns the response stored for method and requestID, if any. The
// caller holds mu.
func (st *state) replay(method, requestID string) (proto.Message, bool) {
	if requestID == "" {
		return nil, false
	}
	resp, ok := st.requests[method+"\x00"+requestID]
	return resp, ok
}

// remember stores resp as the answer to method and requestID. The caller
// holds mu.
func (st *state) remember(method, requestID string, resp proto.Message) {
	if requestID != "" {
		st.requests[method+"\x00"+requestID] = proto.Clone(resp)
	}
}

// page returns the page of items that token and size select, and the next
// token. The caller holds mu.
func page[T any](st *state, items []T, token string, size int32) ([]T, string, error) {
	start := 0
	if token != "" {
		n, err := strconv.Atoi(token)
		if err != nil || n < 0 || n > len(items) {
			return nil, "", invalid("bad page token", violation("page_token", "not a token this server made"))
		}
		start = n
	}
	n := int(size)
	if n == 0 {
		n = cmp.Or(st.pageSize, defaultPageSize)
	}
	end := min(start+n, len(items))
	next := ""
	if end < len(items) {
		next = strconv.Itoa(end)
	}
	return items[start:end], next, nil
}

// sortedValues returns copies of m's values sorted by compare.
func sortedValues[T proto.Message](m map[string]T, compare func(a, b T) int) []T {
	out := make([]T, 0, len(m))
	for _, v := range m {
		out = append(out, proto.CloneOf(v))
	}
	slices.SortFunc(out, compare)
	return out
}

// applyMask copies the fields that mask names (every field in mutable when
// the mask is empty) from src to dst. A path outside mutable is an error.
func applyMask(dst, src proto.Message, mask *fieldmaskpb.FieldMask, mutable []string) error {
	paths := mask.GetPaths()
	if len(paths) == 0 {
		paths = mutable
	}
	src = proto.Clone(src)
	d, s := dst.ProtoReflect(), src.ProtoReflect()
	for _, p := range paths {
		if !slices.Contains(mutable, p) {
			return invalid("bad update mask", violation("update_mask", fmt.Sprintf("field %q cannot be updated", p)))
		}
		fd := d.Descriptor().Fields().ByName(protoreflect.Name(p))
		if s.Has(fd) {
			d.Set(fd, s.Get(fd))
		} else {
			d.Clear(fd)
		}
	}
	return nil
}

// checkEtag fails with ABORTED when etag is set and differs from current.
func checkEtag(name, etag, current string) error {
	if etag != "" && etag != current {
		return statusError(codes.Aborted, "ETAG_MISMATCH", fmt.Sprintf("%s changed since it was read (etag %s, now %s)", name, etag, current))
	}
	return nil
}

// notFound is the NOT_FOUND error for name.
func notFound(name string) error {
	return statusError(codes.NotFound, "NOT_FOUND", name+" not found")
}

// alreadyExists is the ALREADY_EXISTS error for name.
func alreadyExists(name string) error {
	return statusError(codes.AlreadyExists, "ALREADY_EXISTS", name+" already exists")
}

// violation is one BadRequest field violation.
func violation(field, description string) *errdetails.BadRequest_FieldViolation {
	return &errdetails.BadRequest_FieldViolation{Field: field, Description: description}
}

// invalid is an INVALID_ARGUMENT error naming the offending fields, or nil
// when there are none.
func invalid(message string, violations ...*errdetails.BadRequest_FieldViolation) error {
	if len(violations) == 0 {
		return nil
	}
	return statusError(codes.InvalidArgument, "INVALID_ARGUMENT", message, &errdetails.BadRequest{FieldViolations: violations})
}

// statusError is a status error with an ErrorInfo in the exchange's domain
// and the given extra details, shaped like the real server's errors.
func statusError(code codes.Code, reason, message string, extra ...protoadapt.MessageV1) error {
	details := append([]protoadapt.MessageV1{&errdetails.ErrorInfo{Reason: reason, Domain: client.ErrorDomain}}, extra...)
	st := status.New(code, message)
	withDetails, err := st.WithDetails(details...)
	if err != nil {
		return st.Err()
	}
	return withDetails.Err()
}

// now is the current time as a timestamp.
func now() *timestamppb.Timestamp { return timestamppb.Now() }

// randomKey returns 32 random bytes.
func randomKey() []byte {
	key := make([]byte, 32)
	rand.Read(key) // never fails (crypto/rand)
	return key
}
