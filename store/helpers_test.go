package store

import (
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store/kv"
)

// clock is a settable time source for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock {
	return &clock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// openTest opens a store with a frozen clock on a fresh file in
// t.TempDir (or, on the etcd pass, under a fresh prefix of the suite's
// cluster) and closes it when the test ends.
func openTest(t *testing.T) (*Store, *clock) {
	t.Helper()
	c := newClock()
	if onEtcd() {
		return openEtcdAt(t, freshPrefix(), Options{Now: c.now}), c
	}
	s := openAt(t, filepath.Join(t.TempDir(), "exchange.db"), Options{Now: c.now})
	return s, c
}

// reopen closes s and opens its database again, on its engine.
func reopen(t *testing.T, s *Store, opt Options) *Store {
	t.Helper()
	path := s.Path()
	s.Close()
	if s.etcd != nil {
		return openEtcdAt(t, s.etcdPrefix, opt)
	}
	return openAt(t, path, opt)
}

// openAt opens the bbolt file at path, on either pass (a backup is such
// a file whatever the engine it was taken from), and closes it when the
// test ends.
func openAt(t *testing.T, path string, opt Options) *Store {
	t.Helper()
	s, err := Open(path, opt)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// safeRevision returns s.SafeRevision, failing the test on an error.
func safeRevision(t *testing.T, s *Store) int64 {
	t.Helper()
	rev, err := s.SafeRevision(t.Context())
	if err != nil {
		t.Fatalf("SafeRevision: %v", err)
	}
	return rev
}

func secretariat(method string) Op {
	return Op{Actor: "secretariat", Method: "/alltogether.exchange.v1.DirectoryService/" + method}
}

// agencyMsg builds an agency; each subdivision becomes a coverage entry.
func agencyMsg(display string, countries []string, niches []exchangev1.Niche, subdivisions ...string) *exchangev1.Agency {
	a := &exchangev1.Agency{
		DisplayName: display,
		Kind:        exchangev1.AgencyKind_AGENCY_KIND_NATIONAL_NGO,
		Countries:   countries,
		Niches:      niches,
	}
	for _, sd := range subdivisions {
		a.Coverage = append(a.Coverage, &exchangev1.LocationRef{Country: sd[:2], Subdivision: sd})
	}
	return a
}

func mustCreateAgency(t *testing.T, s *Store, id string, a *exchangev1.Agency) *exchangev1.Agency {
	t.Helper()
	if a == nil {
		a = agencyMsg("Agency "+id, nil, nil)
	}
	got, err := s.CreateAgency(t.Context(), secretariat("CreateAgency"), id, a)
	if err != nil {
		t.Fatalf("CreateAgency(%s): %v", id, err)
	}
	return got
}

func date(y, m, d int32) *exchangev1.CalendarDate {
	return &exchangev1.CalendarDate{Year: y, Month: m, Day: d}
}

// wantKind fails unless err is a store error of the given kind.
func wantKind(t *testing.T, err error, kind Kind) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error = %v (%T), want a *store.Error of kind %v", err, err, kind)
	}
	if e.Kind != kind {
		t.Fatalf("error kind = %v (%v), want %v", e.Kind, err, kind)
	}
	return e
}

// names returns the resource names of items, in order.
func names[T interface{ GetName() string }](items []T) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.GetName()
	}
	return out
}

// listAll walks every page of a list and fails on a malformed page.
func listAll[T any](t *testing.T, size int32, list func(Page) ([]T, string, error)) []T {
	t.Helper()
	var all []T
	p := Page{Size: size}
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("pagination does not end")
		}
		items, next, err := list(p)
		if err != nil {
			t.Fatalf("list page %d: %v", pages, err)
		}
		if size > 0 && len(items) > int(size) {
			t.Fatalf("page %d has %d items, more than the page size %d", pages, len(items), size)
		}
		all = append(all, items...)
		if next == "" {
			return all
		}
		// A page may be empty and still have a next page: a filtered
		// page stops after visiting its scan budget of keys (page.go).
		p.Token = next
	}
}

// allChanges returns the whole change log.
func allChanges(t *testing.T, s *Store) []*exchangev1.Change {
	t.Helper()
	ch, err := s.Changes(t.Context(), 0, 1<<30)
	if err != nil {
		t.Fatalf("Changes: %v", err)
	}
	return ch
}

// allAudit returns the whole audit chain.
func allAudit(t *testing.T, s *Store) []*exchangev1.AuditEntry {
	t.Helper()
	es, err := s.AuditEntries(t.Context(), 0, 1<<30)
	if err != nil {
		t.Fatalf("AuditEntries: %v", err)
	}
	return es
}

// counts is how many revisions, changes and audit entries a store holds.
type counts struct{ revision, changes, audit int }

func countsOf(t *testing.T, s *Store) counts {
	t.Helper()
	return counts{int(ordinal(s.Revision())), len(allChanges(t, s)), len(allAudit(t, s))}
}

// revisionBase is the first revision of a store opened by openTest: the
// time of its frozen clock in microseconds (revision.go).
var revisionBase = newClock().t.UnixMicro()

// nth returns the revision of the n-th change (from 1) of a store whose
// frozen clock has not moved (openTest): changes within one microsecond
// take consecutive revisions. nth(0) is 0, the revision of an empty store.
func nth(n int64) int64 {
	if n == 0 {
		return 0
	}
	return revisionBase + n - 1
}

// ordinal is the inverse of nth: which change a revision is.
func ordinal(rev int64) int64 {
	if rev == 0 {
		return 0
	}
	return rev - revisionBase + 1
}

var indexBuckets = [][]byte{
	bucketAgencyByCountry, bucketAgencyByNiche, bucketAgencyBySubdivision,
	bucketFocalPointByTopic, bucketWorkingGroupByMember, bucketCertificateBySubject,
}

// checkIndexes fails unless every index bucket holds exactly the entries
// that the stored records call for: no entry missing, none left over from
// an earlier version of a record.
func checkIndexes(t *testing.T, s *Store) {
	t.Helper()
	want := map[string][]string{}
	got := map[string][]string{}
	err := s.view(t.Context(), func(tx kv.Tx) error {
		add := func(es []indexEntry) {
			for _, e := range es {
				want[string(e.bucket)] = append(want[string(e.bucket)], string(e.key))
			}
		}
		if err := indexesOf(tx, agencies, add); err != nil {
			return err
		}
		if err := indexesOf(tx, focalPoints, add); err != nil {
			return err
		}
		if err := indexesOf(tx, workingGroups, add); err != nil {
			return err
		}
		if err := indexesOf(tx, certificates, add); err != nil {
			return err
		}
		for _, b := range indexBuckets {
			tx.Bucket(b).ForEach(func(k, _ []byte) error {
				got[string(b)] = append(got[string(b)], string(k))
				return nil
			})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range indexBuckets {
		w := want[string(b)]
		slices.Sort(w)
		w = slices.Compact(w)
		if g := got[string(b)]; !slices.Equal(g, w) {
			t.Errorf("index %s:\n got  %q\n want %q", b, g, w)
		}
	}
}

func indexesOf[T proto.Message](tx kv.Tx, tb table[T], add func([]indexEntry)) error {
	return tx.Bucket(tb.bucket).ForEach(func(_, v []byte) error {
		m := tb.newT()
		if err := unmarshal(v, m); err != nil {
			return err
		}
		add(tb.indexes(m))
		return nil
	})
}

// relaxSync stops a bbolt file from syncing each commit, for tests of
// thousands of tiny transactions where durability is not under test;
// strictSync undoes it. On etcd they do nothing.
func relaxSync(s *Store) {
	if s.db != nil {
		s.db.NoSync = true
	}
}

// strictSync makes a bbolt file sync each commit again.
func strictSync(s *Store) {
	if s.db != nil {
		s.db.NoSync = false
	}
}
