package server

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// jointDataset starts an exchange where ilo owns a dataset that iom and
// unicef contribute to and escap may read; ngo is a member outside it.
func jointDataset(t *testing.T) (x *exchange, ilo, iom, unicef, escap, ngo as) {
	x = startExchange(t)
	sec := x.asSecretariat()
	for _, id := range []string{"ilo", "iom", "unicef", "escap", "ngo"} {
		x.createAgency(sec, id)
	}
	ilo, iom, unicef, escap, ngo = x.asAgency("ilo"), x.asAgency("iom"), x.asAgency("unicef"), x.asAgency("escap"), x.asAgency("ngo")
	d := returnsDataset("agencies/iom", "agencies/unicef")
	d.Audience = &exchangev1.Audience{Agencies: []string{"agencies/escap"}}
	if _, err := ilo.datasets().CreateDataset(context.Background(), &exchangev1.CreateDatasetRequest{Parent: "agencies/ilo", DatasetId: "returns", Dataset: d}); err != nil {
		t.Fatal(err)
	}
	return
}

// Dataset ids are chosen per owner: two agencies may each define a
// dataset "returns", and each name, row, lock and pull stays with its own
// dataset, also for a contributor to both.
func TestTwoAgenciesOwnDatasetsWithTheSameID(t *testing.T) {
	t.Parallel()
	x := startExchange(t)
	sec := x.asSecretariat()
	for _, id := range []string{"ilo", "iom", "unicef"} {
		x.createAgency(sec, id)
	}
	ilo, iom, unicef := x.asAgency("ilo"), x.asAgency("iom"), x.asAgency("unicef")
	ctx := context.Background()
	const iloReturns, iomReturns = "agencies/ilo/datasets/returns", "agencies/iom/datasets/returns"
	for _, c := range []struct {
		by   as
		id   string
		want string
	}{{ilo, "returns", iloReturns}, {iom, "returns", iomReturns}, {ilo, "returns-kh", "agencies/ilo/datasets/returns-kh"}} {
		resp, err := c.by.datasets().CreateDataset(ctx, &exchangev1.CreateDatasetRequest{Parent: c.by.agencyName(), DatasetId: c.id, Dataset: returnsDataset("agencies/unicef")})
		if err != nil {
			t.Fatalf("%s creating %s: %v", c.by.agencyID, c.id, err)
		}
		if d := resp.GetDataset(); d.GetName() != c.want || d.GetOwner() != c.by.agencyName() {
			t.Errorf("%s created %s owned by %s, want %s", c.by.agencyID, d.GetName(), d.GetOwner(), c.want)
		}
	}

	// Each owner lists and reads its own only; the contributor lists both.
	list := func(c as) []string {
		resp, err := c.datasets().ListDatasets(ctx, &exchangev1.ListDatasetsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, d := range resp.GetDatasets() {
			names = append(names, d.GetName())
		}
		return names
	}
	for c, want := range map[as][]string{
		ilo:    {iloReturns, "agencies/ilo/datasets/returns-kh"},
		iom:    {iomReturns},
		unicef: {iloReturns, "agencies/ilo/datasets/returns-kh", iomReturns},
	} {
		if got := list(c); !slices.Equal(got, want) {
			t.Errorf("%s lists %v, want %v", c.agencyID, got, want)
		}
	}
	for c, other := range map[as]string{ilo: iomReturns, iom: iloReturns} {
		_, err := c.datasets().GetDataset(ctx, &exchangev1.GetDatasetRequest{Name: other})
		wantCode(t, err, codes.NotFound)
	}

	// Rows go to the dataset named, whoever writes them.
	start := x.store.Revision()
	write(t, ilo, iloReturns, row("2026-03", "KH-12", "female", 1))
	write(t, iom, iomReturns, row("2026-03", "KH-12", "female", 2))
	write(t, unicef, iloReturns, row("2026-03", "KH-12", "female", 3))
	write(t, unicef, iomReturns, row("2026-03", "KH-12", "female", 4))
	write(t, unicef, "agencies/ilo/datasets/returns-kh", row("2026-03", "KH-12", "female", 5))
	rowsOf := func(c as, req *exchangev1.PullDatasetRowsRequest) []string {
		rows, _ := pullAll(t, c, req)
		var out []string
		for _, r := range rows {
			out = append(out, fmt.Sprintf("%s %d", r.GetContributor(), r.GetValues()["cases"].GetIntValue()))
		}
		sort.Strings(out)
		return out
	}
	for _, c := range []struct {
		by   as
		name string
		want []string
	}{
		{ilo, iloReturns, []string{"agencies/ilo 1", "agencies/unicef 3"}},
		{iom, iomReturns, []string{"agencies/iom 2", "agencies/unicef 4"}},
		{unicef, iloReturns, []string{"agencies/ilo 1", "agencies/unicef 3"}},
		{unicef, iomReturns, []string{"agencies/iom 2", "agencies/unicef 4"}},
	} {
		if got := rowsOf(c.by, &exchangev1.PullDatasetRowsRequest{Dataset: c.name}); !slices.Equal(got, c.want) {
			t.Errorf("%s pulls %v from %s, want %v", c.by.agencyID, got, c.name, c.want)
		}
		if got := rowsOf(c.by, &exchangev1.PullDatasetRowsRequest{Dataset: c.name, SinceRevision: start}); !slices.Equal(got, c.want) {
			t.Errorf("%s pulls %v from %s since %d, want %v", c.by.agencyID, got, c.name, start, c.want)
		}
	}

	// A lock of one owner's period leaves the other's open.
	if _, err := ilo.datasets().LockDatasetPeriod(ctx, &exchangev1.LockDatasetPeriodRequest{Dataset: iloReturns, Period: "2026-03"}); err != nil {
		t.Fatal(err)
	}
	if r := write(t, unicef, iloReturns, row("2026-03", "KH-12", "female", 6)).GetResults()[0]; r.GetAccepted() || r.GetCode() != "FAILED_PRECONDITION" {
		t.Errorf("a row in ilo's locked period: %v", r)
	}
	if r := write(t, unicef, iomReturns, row("2026-03", "KH-12", "female", 7)).GetResults()[0]; !r.GetAccepted() {
		t.Errorf("a row in iom's open period, after ilo locked the same period of its own dataset: %v", r)
	}
	if got, want := rowsOf(iom, &exchangev1.PullDatasetRowsRequest{Dataset: iomReturns}), []string{"agencies/iom 2", "agencies/unicef 7"}; !slices.Equal(got, want) {
		t.Errorf("iom pulls %v, want %v", got, want)
	}
	// The owner of one may not change the other.
	_, err := ilo.datasets().LockDatasetPeriod(ctx, &exchangev1.LockDatasetPeriodRequest{Dataset: iomReturns, Period: "2026-03"})
	wantCode(t, err, codes.NotFound)
}

// TestDatasetsAreListedByOwnerThenID pins the order the client test fake
// copies: by owner, then id, so "wfp" comes before "wfp-kh" although
// "agencies/wfp-kh/..." sorts first as a string.
func TestDatasetsAreListedByOwnerThenID(t *testing.T) {
	t.Parallel()
	x := startExchange(t)
	sec := x.asSecretariat()
	for _, id := range []string{"wfp", "wfp-kh", "iom"} {
		x.createAgency(sec, id)
	}
	ctx := context.Background()
	for _, c := range []struct{ by, id string }{{"wfp", "zeta"}, {"wfp-kh", "alpha"}} {
		d := returnsDataset()
		d.Audience = &exchangev1.Audience{AllMembers: true}
		owner := x.asAgency(c.by)
		if _, err := owner.datasets().CreateDataset(ctx, &exchangev1.CreateDatasetRequest{Parent: owner.agencyName(), DatasetId: c.id, Dataset: d}); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := x.asAgency("iom").datasets().ListDatasets(ctx, &exchangev1.ListDatasetsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range resp.GetDatasets() {
		names = append(names, d.GetName())
	}
	if got, want := strings.Join(names, " "), "agencies/wfp/datasets/zeta agencies/wfp-kh/datasets/alpha"; got != want {
		t.Errorf("listed %s, want %s", got, want)
	}
}

func TestRowsAreCheckedAgainstTheSchemaOneByOne(t *testing.T) {
	x, _, iom, _, _, _ := jointDataset(t)
	good := func() *exchangev1.Row { return row("2026-03", "KH-12", "female", 4) }
	cases := []struct {
		name   string
		mutate func(*exchangev1.Row)
		field  string
	}{
		{"valid", func(*exchangev1.Row) {}, ""},
		{"period of another form", func(r *exchangev1.Row) { r.Period = "2026-Q1" }, "writes[1].row.period"},
		{"month 13", func(r *exchangev1.Row) { r.Period = "2026-13" }, "writes[2].row.period"},
		{"unknown province", func(r *exchangev1.Row) { r.Location = "KH-99" }, "writes[3].row.location"},
		{"country at province level", func(r *exchangev1.Row) { r.Location = "KH" }, "writes[4].row.location"},
		{"value not allowed", func(r *exchangev1.Row) { r.Categories["sex"] = "unknown" }, "writes[5].row.categories.sex"},
		{"unknown category", func(r *exchangev1.Row) { r.Categories["disability"] = "yes" }, "writes[6].row.categories.disability"},
		{"required category missing", func(r *exchangev1.Row) { delete(r.Categories, "sex") }, "writes[7].row.categories.sex"},
		{"required measure missing", func(r *exchangev1.Row) { delete(r.Values, "cases") }, "writes[8].row.values.cases"},
		{"below min", func(r *exchangev1.Row) { r.Values["cases"] = intValue(-1) }, "writes[9].row.values.cases"},
		{"above max", func(r *exchangev1.Row) { r.Values["cases"] = intValue(100001) }, "writes[10].row.values.cases"},
		{"wrong type", func(r *exchangev1.Row) {
			r.Values["cases"] = &exchangev1.Value{Kind: &exchangev1.Value_TextValue{TextValue: "4"}}
		}, "writes[11].row.values.cases"},
		{"decimal below min", func(r *exchangev1.Row) {
			r.Values["spend"] = &exchangev1.Value{Kind: &exchangev1.Value_DecimalValue{DecimalValue: -0.5}}
		}, "writes[12].row.values.spend"},
		{"text too long", func(r *exchangev1.Row) {
			r.Values["note"] = &exchangev1.Value{Kind: &exchangev1.Value_TextValue{TextValue: "twenty-one characters"}}
		}, "writes[13].row.values.note"},
		{"no such date", func(r *exchangev1.Row) {
			r.Values["reported_on"] = &exchangev1.Value{Kind: &exchangev1.Value_DateValue{DateValue: date(2026, 2, 30)}}
		}, "writes[14].row.values.reported_on"},
		{"boolean as int", func(r *exchangev1.Row) { r.Values["verified"] = intValue(1) }, "writes[15].row.values.verified"},
		{"code not in list", func(r *exchangev1.Row) {
			r.Values["channel"] = &exchangev1.Value{Kind: &exchangev1.Value_CodeValue{CodeValue: "radio"}}
		}, "writes[16].row.values.channel"},
		{"unknown measure", func(r *exchangev1.Row) { r.Values["victims"] = intValue(1) }, "writes[17].row.values.victims"},
		{"empty value", func(r *exchangev1.Row) { r.Values["cases"] = &exchangev1.Value{} }, "writes[18].row.values[\"cases\"].kind"},
		{"valid with every type", func(r *exchangev1.Row) {
			r.Location = "KH-2"
			r.Categories["age_group"] = "0-17"
			r.Values["spend"] = &exchangev1.Value{Kind: &exchangev1.Value_DecimalValue{DecimalValue: 12.5}}
			r.Values["note"] = &exchangev1.Value{Kind: &exchangev1.Value_TextValue{TextValue: "ok"}}
			r.Values["reported_on"] = &exchangev1.Value{Kind: &exchangev1.Value_DateValue{DateValue: date(2026, 3, 31)}}
			r.Values["verified"] = &exchangev1.Value{Kind: &exchangev1.Value_BoolValue{BoolValue: true}}
			r.Values["channel"] = &exchangev1.Value{Kind: &exchangev1.Value_CodeValue{CodeValue: "hotline"}}
		}, ""},
	}
	var rows []*exchangev1.Row
	for _, c := range cases {
		r := good()
		c.mutate(r)
		rows = append(rows, r)
	}
	resp := write(t, iom, "agencies/ilo/datasets/returns", rows...)
	for i, c := range cases {
		res := resp.GetResults()[i]
		if c.field == "" {
			if !res.GetAccepted() {
				t.Errorf("%s: rejected %v", c.name, res.GetViolations())
			}
			continue
		}
		if res.GetAccepted() || len(res.GetViolations()) != 1 || res.GetViolations()[0].GetField() != c.field {
			t.Errorf("%s: %v, want one violation of %s", c.name, res, c.field)
		}
	}
	if resp.GetAccepted() != 2 || resp.GetRejected() != int32(len(cases)-2) {
		t.Errorf("accepted %d rejected %d", resp.GetAccepted(), resp.GetRejected())
	}
	stored, _ := pullAll(t, iom, &exchangev1.PullDatasetRowsRequest{Dataset: "agencies/ilo/datasets/returns"})
	if len(stored) != 2 {
		t.Fatalf("%d rows stored, want exactly the 2 valid ones", len(stored))
	}
	_ = x
}

func TestWhoMayWriteAndRead(t *testing.T) {
	_, ilo, iom, _, escap, ngo := jointDataset(t)
	ctx := context.Background()
	write(t, iom, "agencies/ilo/datasets/returns", row("2026-03", "KH-12", "female", 4))

	// The audience reads but does not write.
	_, err := escap.datasets().WriteDatasetRows(ctx, &exchangev1.WriteDatasetRowsRequest{Dataset: "agencies/ilo/datasets/returns",
		Writes: []*exchangev1.RowWrite{{Row: row("2026-03", "KH-12", "male", 1)}}})
	wantCode(t, err, codes.PermissionDenied)
	if rows, _ := pullAll(t, escap, &exchangev1.PullDatasetRowsRequest{Dataset: "agencies/ilo/datasets/returns"}); len(rows) != 1 {
		t.Fatalf("the audience reads %d rows", len(rows))
	}
	// An agency outside it finds nothing, as for a dataset never created.
	for name, call := range map[string]func(string) error{
		"get": func(n string) error {
			_, err := ngo.datasets().GetDataset(ctx, &exchangev1.GetDatasetRequest{Name: n})
			return err
		},
		"write": func(n string) error {
			_, err := ngo.datasets().WriteDatasetRows(ctx, &exchangev1.WriteDatasetRowsRequest{Dataset: n, Writes: []*exchangev1.RowWrite{{Row: row("2026-03", "KH-12", "male", 1)}}})
			return err
		},
		"pull": func(n string) error {
			s, err := ngo.datasets().PullDatasetRows(ctx, &exchangev1.PullDatasetRowsRequest{Dataset: n})
			if err == nil {
				_, err = s.Recv()
			}
			return err
		},
		"aggregate": func(n string) error {
			_, err := ngo.datasets().AggregateDatasetRows(ctx, &exchangev1.AggregateDatasetRowsRequest{Dataset: n})
			return err
		},
	} {
		hidden, missing := call("agencies/ilo/datasets/returns"), call("agencies/ilo/datasets/never-made")
		h, m := wantCode(t, hidden, codes.NotFound), wantCode(t, missing, codes.NotFound)
		if fmt.Sprint(h.Message()) != fmt.Sprint(m.Message()[:0])+"agencies/ilo/datasets/returns not found" || m.Message() != "agencies/ilo/datasets/never-made not found" {
			t.Errorf("%s: hidden %q vs missing %q", name, h.Message(), m.Message())
		}
	}
	list, err := ngo.datasets().ListDatasets(ctx, &exchangev1.ListDatasetsRequest{})
	if err != nil || len(list.GetDatasets()) != 0 {
		t.Fatalf("ngo lists %v", list)
	}

	// Only the owner changes the definition or locks periods.
	d, _ := iom.datasets().GetDataset(ctx, &exchangev1.GetDatasetRequest{Name: "agencies/ilo/datasets/returns"})
	d.GetDataset().Title = "Changed by a contributor"
	_, err = iom.datasets().UpdateDataset(ctx, &exchangev1.UpdateDatasetRequest{Dataset: d.GetDataset()})
	wantCode(t, err, codes.PermissionDenied)
	_, err = iom.datasets().LockDatasetPeriod(ctx, &exchangev1.LockDatasetPeriodRequest{Dataset: "agencies/ilo/datasets/returns", Period: "2026-03"})
	wantCode(t, err, codes.PermissionDenied)
	_ = ilo
}

func TestLockedPeriodsRefuseWritesUntilUnlocked(t *testing.T) {
	_, ilo, iom, _, _, _ := jointDataset(t)
	ctx := context.Background()
	if _, err := ilo.datasets().LockDatasetPeriod(ctx, &exchangev1.LockDatasetPeriodRequest{Dataset: "agencies/ilo/datasets/returns", Period: "2026-03"}); err != nil {
		t.Fatal(err)
	}
	resp := write(t, iom, "agencies/ilo/datasets/returns", row("2026-03", "KH-12", "female", 4), row("2026-04", "KH-12", "female", 5))
	if r := resp.GetResults()[0]; r.GetAccepted() || r.GetCode() != "FAILED_PRECONDITION" || r.GetViolations()[0].GetField() != "writes[0].row.period" {
		t.Errorf("write into a locked period: %v", r)
	}
	if !resp.GetResults()[1].GetAccepted() {
		t.Errorf("write into an open period refused: %v", resp.GetResults()[1])
	}
	_, err := ilo.datasets().UnlockDatasetPeriod(ctx, &exchangev1.UnlockDatasetPeriodRequest{Dataset: "agencies/ilo/datasets/returns", Period: "2026-03", Reason: "late correction from Battambang"})
	if err != nil {
		t.Fatal(err)
	}
	if r := write(t, iom, "agencies/ilo/datasets/returns", row("2026-03", "KH-12", "female", 4)).GetResults()[0]; !r.GetAccepted() {
		t.Errorf("after unlock: %v", r)
	}
	d, _ := ilo.datasets().GetDataset(ctx, &exchangev1.GetDatasetRequest{Name: "agencies/ilo/datasets/returns"})
	if h := d.GetDataset().GetLockHistory(); len(h) != 2 || h[1].GetReason() != "late correction from Battambang" {
		t.Errorf("lock history %v", h)
	}
	c, err := ilo.datasets().GetDatasetCompleteness(ctx, &exchangev1.GetDatasetCompletenessRequest{Dataset: "agencies/ilo/datasets/returns", Period: "2026-03"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, e := range c.GetContributors() {
		got[e.GetContributor()] = e.GetMissingLocations()
	}
	if len(got) != 2 || !slices.Equal(got["agencies/iom"], []string{"KH-2"}) || !slices.Equal(got["agencies/unicef"], []string{"KH-12", "KH-2"}) {
		t.Errorf("completeness %v", c)
	}
}

// rowModel is the expected content of a dataset: row key → row.
type rowModel map[string]*exchangev1.Row

func rowID(r *exchangev1.Row) string {
	return fmt.Sprintf("%s|%s|%s|%s|%s", r.GetPeriod(), r.GetLocation(), r.GetContributor(), r.GetCategories()["sex"], r.GetCategories()["age_group"])
}

func TestIncrementalPullReturnsExactlyTheChangesAfterARevision(t *testing.T) {
	_, _, iom, unicef, escap, _ := jointDataset(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 11))
	provinces := []string{"KH-12", "KH-2", "KH-17", "KH-3"}
	sexes := []string{"female", "male"}
	contributors := map[string]as{"agencies/iom": iom, "agencies/unicef": unicef}
	names := []string{"agencies/iom", "agencies/unicef"}
	current := rowModel{}
	var marks []int64
	snapshots := []rowModel{}
	for round := 0; round < 12; round++ {
		who := names[rng.IntN(2)]
		req := &exchangev1.WriteDatasetRowsRequest{Dataset: "agencies/ilo/datasets/returns"}
		seen := map[string]bool{}
		for i := 0; i < 30; i++ {
			r := row(fmt.Sprintf("2026-%02d", 1+rng.IntN(6)), provinces[rng.IntN(4)], sexes[rng.IntN(2)], int64(rng.IntN(50)))
			r.Contributor = who
			if seen[rowID(r)] {
				continue
			}
			seen[rowID(r)] = true
			del := current[rowID(r)] != nil && rng.IntN(4) == 0
			req.Writes = append(req.Writes, &exchangev1.RowWrite{Row: r, Delete: del})
		}
		resp, err := contributors[who].datasets().WriteDatasetRows(ctx, req)
		if err != nil || resp.GetRejected() != 0 {
			t.Fatalf("round %d: %v %v", round, err, resp)
		}
		for _, w := range req.GetWrites() {
			if w.GetDelete() {
				delete(current, rowID(w.GetRow()))
			} else {
				current[rowID(w.GetRow())] = w.GetRow()
			}
		}
		marks = append(marks, resp.GetRevision())
		snap := rowModel{}
		for k, v := range current {
			snap[k] = v
		}
		snapshots = append(snapshots, snap)
	}

	full, _ := pullAll(t, escap, &exchangev1.PullDatasetRowsRequest{Dataset: "agencies/ilo/datasets/returns", PageSize: 7})
	if len(full) != len(current) {
		t.Fatalf("full pull has %d rows, model %d", len(full), len(current))
	}
	for _, r := range full {
		want := current[rowID(r)]
		if want == nil || r.GetValues()["cases"].GetIntValue() != want.GetValues()["cases"].GetIntValue() {
			t.Fatalf("full pull row %v does not match the model %v", r, want)
		}
	}
	// Applying the incremental pull since each mark to the snapshot at that
	// mark gives the full pull.
	for i, mark := range marks {
		changes, _ := pullAll(t, escap, &exchangev1.PullDatasetRowsRequest{Dataset: "agencies/ilo/datasets/returns", SinceRevision: mark, PageSize: 5})
		applied := rowModel{}
		for k, v := range snapshots[i] {
			applied[k] = v
		}
		for _, c := range changes {
			if c.GetRevision() <= mark {
				t.Fatalf("since %d returned a row of revision %d", mark, c.GetRevision())
			}
			if c.GetDeleted() {
				delete(applied, rowID(c))
			} else {
				applied[rowID(c)] = c
			}
		}
		if len(applied) != len(current) {
			t.Fatalf("since mark %d: snapshot + changes has %d rows, want %d", i, len(applied), len(current))
		}
		for k := range current {
			if applied[k] == nil {
				t.Fatalf("since mark %d: row %s missing", i, k)
			}
		}
	}
	last, _ := pullAll(t, escap, &exchangev1.PullDatasetRowsRequest{Dataset: "agencies/ilo/datasets/returns", SinceRevision: marks[len(marks)-1]})
	if len(last) != 0 {
		t.Fatalf("nothing changed after the last write, but %d rows came back", len(last))
	}
}

func TestPullResumesFromItsTokenAndFilters(t *testing.T) {
	_, _, iom, unicef, escap, _ := jointDataset(t)
	ctx := context.Background()
	var rows []*exchangev1.Row
	for m := 1; m <= 6; m++ {
		for _, p := range []string{"KH-12", "KH-2"} {
			rows = append(rows, row(fmt.Sprintf("2026-%02d", m), p, "female", int64(m)))
		}
	}
	write(t, iom, "agencies/ilo/datasets/returns", rows...)
	write(t, unicef, "agencies/ilo/datasets/returns", row("2026-02", "KH-12", "male", 3))

	req := &exchangev1.PullDatasetRowsRequest{Dataset: "agencies/ilo/datasets/returns", PageSize: 3, PeriodFrom: "2026-02", PeriodTo: "2026-05", Locations: []string{"KH-12"}}
	stream, err := escap.datasets().PullDatasetRows(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil || len(first.GetRows()) != 3 || first.GetResumeToken() == "" {
		t.Fatalf("first page %v %v", first, err)
	}
	resumed := proto.Clone(req).(*exchangev1.PullDatasetRowsRequest)
	resumed.ResumeToken = first.GetResumeToken()
	rest, _ := pullAll(t, escap, resumed)
	got := append(first.GetRows(), rest...)
	var keys []string
	for _, r := range got {
		keys = append(keys, r.GetPeriod()+"/"+r.GetContributor()+"/"+r.GetCategories()["sex"])
	}
	want := []string{"2026-02/agencies/iom/female", "2026-02/agencies/unicef/male", "2026-03/agencies/iom/female", "2026-04/agencies/iom/female", "2026-05/agencies/iom/female"}
	sort.Strings(keys)
	if !slices.Equal(keys, want) {
		t.Fatalf("resumed pull %v, want %v", keys, want)
	}
	bad := proto.Clone(req).(*exchangev1.PullDatasetRowsRequest)
	bad.ResumeToken, bad.PeriodTo = first.GetResumeToken(), "2026-06"
	s, _ := escap.datasets().PullDatasetRows(ctx, bad)
	_, err = s.Recv()
	wantCode(t, err, codes.InvalidArgument)
}

func TestAggregatesSumContributionsAndSuppressSmallCells(t *testing.T) {
	x, ilo, iom, unicef, _, ngo := jointDataset(t)
	ctx := context.Background()
	write(t, iom, "agencies/ilo/datasets/returns", row("2026-03", "KH-12", "female", 10), row("2026-03", "KH-12", "male", 2), row("2026-03", "KH-2", "female", 7))
	write(t, unicef, "agencies/ilo/datasets/returns", row("2026-03", "KH-12", "female", 5), row("2026-04", "KH-2", "male", 1))

	agg, err := ilo.datasets().AggregateDatasetRows(ctx, &exchangev1.AggregateDatasetRowsRequest{Dataset: "agencies/ilo/datasets/returns", GroupBy: []string{"location", "sex"}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, c := range agg.GetCells() {
		got[c.GetGroup()["location"]+"/"+c.GetGroup()["sex"]] = c.GetSums()["cases"]
	}
	want := map[string]float64{"KH-12/female": 15, "KH-12/male": 2, "KH-2/female": 7, "KH-2/male": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("aggregates %v, want %v", got, want)
	}

	// The public view: ngo is outside the audience; the owner opens it.
	_, err = ngo.datasets().AggregateDatasetRows(ctx, &exchangev1.AggregateDatasetRowsRequest{Dataset: "agencies/ilo/datasets/returns"})
	wantCode(t, err, codes.NotFound)
	d, _ := ilo.datasets().GetDataset(ctx, &exchangev1.GetDatasetRequest{Name: "agencies/ilo/datasets/returns"})
	d.GetDataset().PublicAggregates = true
	if _, err := ilo.datasets().UpdateDataset(ctx, &exchangev1.UpdateDatasetRequest{Dataset: d.GetDataset()}); err != nil {
		t.Fatal(err)
	}
	pub, err := ngo.datasets().AggregateDatasetRows(ctx, &exchangev1.AggregateDatasetRowsRequest{Dataset: "agencies/ilo/datasets/returns", GroupBy: []string{"location", "sex"}})
	if err != nil {
		t.Fatal(err)
	}
	// Outside the audience, the rows' small values are rounded to 0 or 5
	// (a rounded 0 leaves no cell) and 5 or more stay as they are.
	if pub.GetRoundingBase() != 5 || pub.GetSuppressedCells() != 0 || pub.GetSuppressionThreshold() != 0 {
		t.Fatalf("public view %v", pub)
	}
	for _, c := range pub.GetCells() {
		at, cases := c.GetGroup()["location"]+"/"+c.GetGroup()["sex"], c.GetSums()["cases"]
		switch {
		case at == "KH-12/female" && cases == 15, at == "KH-2/female" && cases == 7:
		case (at == "KH-12/male" || at == "KH-2/male") && cases == 5:
		default:
			t.Fatalf("public cell %s = %v: a small value shows, or a large one moved", at, cases)
		}
		if c.GetRows() != 0 {
			t.Fatalf("public cell %s counts its rows: %d", at, c.GetRows())
		}
	}
	_ = x
}

func TestSchemaChangesThatWouldInvalidateRowsAreRefused(t *testing.T) {
	_, ilo, iom, _, _, _ := jointDataset(t)
	ctx := context.Background()
	write(t, iom, "agencies/ilo/datasets/returns", row("2026-03", "KH-12", "female", 4))
	get := func() *exchangev1.Dataset {
		d, err := ilo.datasets().GetDataset(ctx, &exchangev1.GetDatasetRequest{Name: "agencies/ilo/datasets/returns"})
		if err != nil {
			t.Fatal(err)
		}
		return d.GetDataset()
	}
	refused := []struct {
		name   string
		change func(*exchangev1.Dataset)
		field  string
	}{
		{"remove a measure", func(d *exchangev1.Dataset) { d.Schema.Measures = d.Schema.Measures[1:] }, "dataset.schema.measures"},
		{"change a type", func(d *exchangev1.Dataset) { d.Schema.Measures[0].Type = exchangev1.MeasureType_MEASURE_TYPE_DECIMAL }, "dataset.schema.measures[0].type"},
		{"narrow a bound", func(d *exchangev1.Dataset) { d.Schema.Measures[0].Max = ptr(10.0) }, "dataset.schema.measures[0].max"},
		{"remove an allowed value", func(d *exchangev1.Dataset) { d.Schema.Categories[0].Values = []string{"female"} }, "dataset.schema.categories[0].values"},
		{"add a required measure", func(d *exchangev1.Dataset) {
			d.Schema.Measures = append(d.Schema.Measures, &exchangev1.Measure{Key: "x", Type: exchangev1.MeasureType_MEASURE_TYPE_INTEGER, Required: true})
		}, "dataset.schema.measures[6].required"},
		{"change the period type", func(d *exchangev1.Dataset) { d.PeriodType = exchangev1.PeriodType_PERIOD_TYPE_YEAR }, "dataset.period_type"},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			d := get()
			c.change(d)
			_, err := ilo.datasets().UpdateDataset(ctx, &exchangev1.UpdateDatasetRequest{Dataset: d})
			st := wantCode(t, err, codes.InvalidArgument)
			if f := violatedFields(st); len(f) != 1 || f[0] != c.field {
				t.Errorf("violations %v, want %s", f, c.field)
			}
		})
	}
	d := get()
	d.Schema.Measures = append(d.Schema.Measures, &exchangev1.Measure{Key: "referred_on", Type: exchangev1.MeasureType_MEASURE_TYPE_INTEGER})
	d.Schema.Categories = append(d.Schema.Categories, &exchangev1.Category{Key: "disability", Values: []string{"yes", "no"}})
	d.Schema.Categories[0].Values = append(d.Schema.Categories[0].Values, "other")
	if _, err := ilo.datasets().UpdateDataset(ctx, &exchangev1.UpdateDatasetRequest{Dataset: d}); err != nil {
		t.Fatalf("adding optional columns and values: %v", err)
	}
	// The old row keeps its key: writing it again replaces it.
	write(t, iom, "agencies/ilo/datasets/returns", row("2026-03", "KH-12", "female", 9))
	rows, _ := pullAll(t, iom, &exchangev1.PullDatasetRowsRequest{Dataset: "agencies/ilo/datasets/returns"})
	if len(rows) != 1 || rows[0].GetValues()["cases"].GetIntValue() != 9 {
		t.Fatalf("after the schema change: %v", rows)
	}
}

func TestWatchDatasetRowsFollowsWritesAndResumes(t *testing.T) {
	_, _, iom, _, escap, _ := jointDataset(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := escap.datasets().WatchDatasetRows(ctx, &exchangev1.WatchDatasetRowsRequest{Dataset: "agencies/ilo/datasets/returns"})
	if err != nil {
		t.Fatal(err)
	}
	first := write(t, iom, "agencies/ilo/datasets/returns", row("2026-03", "KH-12", "female", 4), row("2026-03", "KH-12", "male", 3))
	var got []*exchangev1.Row
	for len(got) < 2 {
		msg, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, msg.GetRows()...)
	}
	if got[0].GetRevision() != first.GetRevision() {
		t.Fatalf("watched revision %d, written %d", got[0].GetRevision(), first.GetRevision())
	}
	cancel()
	second := write(t, iom, "agencies/ilo/datasets/returns", row("2026-04", "KH-2", "female", 1))
	resumed, err := escap.datasets().WatchDatasetRows(context.Background(), &exchangev1.WatchDatasetRowsRequest{Dataset: "agencies/ilo/datasets/returns", StartRevision: first.GetRevision()})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := resumed.Recv()
	if err != nil || len(msg.GetRows()) != 1 || msg.GetRows()[0].GetRevision() != second.GetRevision() || msg.GetRevision() != second.GetRevision() {
		t.Fatalf("resumed watch %v %v", msg, err)
	}
}

func TestOutputOnlyDeletedFlagIsIgnoredOnWrites(t *testing.T) {
	_, _, iom, _, _, _ := jointDataset(t)
	r := row("2026-01", "KH-12", "female", 3)
	r.Deleted = true
	if res := write(t, iom, "agencies/ilo/datasets/returns", r).GetResults()[0]; !res.GetAccepted() {
		t.Fatal(res)
	}
	rows, _ := pullAll(t, iom, &exchangev1.PullDatasetRowsRequest{Dataset: "agencies/ilo/datasets/returns"})
	if len(rows) != 1 || rows[0].GetDeleted() {
		t.Fatalf("a write sent with deleted=true was stored as %v", rows)
	}
}
