package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"time"

	"github.com/alltogether/exchange/client"
	"github.com/alltogether/exchange/geo"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// Seeding writes large data sets through the store package straight into
// a data directory before exchanged starts. That is set-up, not the
// measured path: every record still gets its revision, change-log and
// audit entries and its indexes, exactly as through the API, only without
// the RPCs. Everything measured afterwards goes through exchanged.

const batchCreateMethod = "/alltogether.exchange.v1.ReferralService/BatchCreateReferrals"

// seedAgencies creates the bench agencies, as the secretariat would.
func seedAgencies(ctx context.Context, st *store.Store) error {
	for _, id := range benchAgencies() {
		if _, err := st.CreateAgency(ctx, store.Op{Actor: "secretariat", Method: "/alltogether.exchange.v1.DirectoryService/CreateAgency"}, id, benchAgency(id)); err != nil {
			return fmt.Errorf("agency %s: %w", id, err)
		}
	}
	return nil
}

// seedReferrals stores n referrals from ilo to iom in dataDir, 2,000 per
// transaction, one in a hundred for filteredNiche and the others for
// counselling, and returns the names of a sample of them (every step-th).
func seedReferrals(ctx context.Context, dataDir string, n, sample int) ([]string, error) {
	st, err := store.Open(filepath.Join(dataDir, "exchange.db"), store.Options{})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	if err := seedAgencies(ctx, st); err != nil {
		return nil, err
	}
	step := max(1, n/sample)
	var names []string
	const chunk = 2000
	for i := 0; i < n; i += chunk {
		items := make([]store.NewReferral, 0, chunk)
		for j := i; j < min(n, i+chunk); j++ {
			// Random request ids, as the typed client makes them.
			r := newReferral(int64(j))
			if j%100 == 0 {
				// One in a hundred asks for prevention: the filtered
				// workload's sparse filter.
				r.Service.Niche = filteredNiche
				r.Consent.Services = []exchangev1.Niche{filteredNiche}
			}
			items = append(items, store.NewReferral{RequestID: client.NewRequestID(), Referral: r})
		}
		res, err := st.CreateReferrals(ctx, store.Op{Actor: "agencies/" + sender, Method: batchCreateMethod}, items)
		if err != nil {
			return nil, err
		}
		for k, r := range res {
			if r.Err != nil {
				return nil, r.Err
			}
			if (i+k)%step == 0 {
				names = append(names, r.Referral.GetName())
			}
		}
	}
	return names, nil
}

// pullDataset is the dataset of the pull workload, owned by ilo, rows
// contributed by iom; its schema is that of a national office's monthly
// returns (two categories, six measures).
func pullDataset() *exchangev1.Dataset {
	return &exchangev1.Dataset{
		Title:        "Returned victims assisted",
		Contributors: []string{"agencies/" + receiver},
		PeriodType:   exchangev1.PeriodType_PERIOD_TYPE_MONTH,
		Audience:     &exchangev1.Audience{AllMembers: true},
		Schema: &exchangev1.DatasetSchema{
			LocationLevel: exchangev1.AdminLevel_ADMIN_LEVEL_PROVINCE,
			LocationHxl:   "#adm1+code",
			Categories: []*exchangev1.Category{
				{Key: "sex", Values: []string{"female", "male"}, Required: true, Hxl: "#sex"},
				{Key: "age_group", Values: []string{"0-17", "18+"}},
			},
			Measures: []*exchangev1.Measure{
				{Key: "cases", Type: exchangev1.MeasureType_MEASURE_TYPE_INTEGER, Required: true, Min: ptr(0.0), Max: ptr(100000.0), Hxl: "#affected"},
				{Key: "spend", Type: exchangev1.MeasureType_MEASURE_TYPE_DECIMAL, Min: ptr(0.0)},
				{Key: "channel", Type: exchangev1.MeasureType_MEASURE_TYPE_CODE, Codes: []string{"hotline", "outreach", "police"}},
			},
		},
	}
}

func ptr[T any](v T) *T { return &v }

// pullDatasetName is the pull dataset, owned by the sender.
var pullDatasetName = store.DatasetName(sender, "returns")

// pullProvinces are the locations of the pull dataset's rows.
var pullProvinces = []string{"KH-1", "KH-2", "KH-3", "KH-4", "KH-5", "KH-6", "KH-7", "KH-8", "KH-9", "KH-10", "KH-11", "KH-12"}

// pullRow is row j of the pull dataset as seedRows writes it; rows 0 to
// n-1 have distinct keys.
func pullRow(j int) *exchangev1.Row {
	month := j / (len(pullProvinces) * 4)
	return &exchangev1.Row{
		Period:   fmt.Sprintf("%04d-%02d", 1000+month/12, 1+month%12),
		Location: pullProvinces[j/4%len(pullProvinces)],
		Categories: map[string]string{
			"sex": []string{"female", "male"}[j%2], "age_group": []string{"0-17", "18+"}[j/2%2],
		},
		Values: map[string]*exchangev1.Value{
			"cases":   {Kind: &exchangev1.Value_IntValue{IntValue: int64(j % 97)}},
			"spend":   {Kind: &exchangev1.Value_DecimalValue{DecimalValue: float64(j%1000) * 12.5}},
			"channel": {Kind: &exchangev1.Value_CodeValue{CodeValue: []string{"hotline", "outreach", "police"}[j%3]}},
		},
	}
}

// seedRows stores n rows in the pull dataset, 20,000 per transaction: 12
// provinces × 2 sexes × 2 age groups per month, months running back as
// far as n needs, each row with an integer, a decimal and a code.
func seedRows(ctx context.Context, dataDir string, n int) error {
	st, err := store.Open(filepath.Join(dataDir, "exchange.db"), store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	if err := seedAgencies(ctx, st); err != nil {
		return err
	}
	if _, err := st.CreateDataset(ctx, store.Op{Actor: "agencies/" + sender, Method: "/alltogether.exchange.v1.DatasetService/CreateDataset"}, "returns", pullDataset()); err != nil {
		return err
	}
	const chunk = 20_000
	for i := 0; i < n; i += chunk {
		writes := make([]store.RowWrite, 0, chunk)
		for j := i; j < min(n, i+chunk); j++ {
			writes = append(writes, store.RowWrite{Row: pullRow(j)})
		}
		errs, _, err := st.WriteDatasetRows(ctx, store.Op{Actor: "agencies/" + receiver, Method: "/alltogether.exchange.v1.DatasetService/WriteDatasetRows"},
			pullDatasetName, func(*exchangev1.Dataset) error { return nil }, writes)
		if err != nil {
			return err
		}
		for _, e := range errs {
			if e != nil {
				return e
			}
		}
	}
	return nil
}

// planAgencies own the plans of the FindOverlaps workload.
const planAgencies = 20

// seedPlans stores n plans of 20 agencies, spread like a sub-region's
// plans (the generator of server/plan_bench_test.go): six countries, one
// to four provinces each, one to three niches, periods of half a year to
// three years between 2024 and 2030; most shared with all members, some
// with a working group, some kept to the owner.
func seedPlans(ctx context.Context, dataDir string, n int) error {
	st, err := store.Open(filepath.Join(dataDir, "exchange.db"), store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	if err := seedAgencies(ctx, st); err != nil {
		return err
	}
	wg := &exchangev1.WorkingGroup{DisplayName: "UN working group", Kind: exchangev1.WorkingGroupKind_WORKING_GROUP_KIND_WORKING_GROUP,
		Members: []*exchangev1.Membership{
			{Agency: "agencies/" + planAgencyID(0), Role: exchangev1.MembershipRole_MEMBERSHIP_ROLE_MEMBER},
			{Agency: "agencies/" + planAgencyID(1), Role: exchangev1.MembershipRole_MEMBERSHIP_ROLE_MEMBER},
		}}
	if _, err := st.CreateWorkingGroup(ctx, store.Op{Actor: "secretariat", Method: "/alltogether.exchange.v1.DirectoryService/CreateWorkingGroup"}, "un-wg", wg); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(10000, 1))
	countries := geo.Countries()
	var niches []exchangev1.Niche
	values := exchangev1.Niche_NICHE_UNSPECIFIED.Descriptor().Values()
	for i := 0; i < values.Len(); i++ {
		if v := exchangev1.Niche(values.Get(i).Number()); v != 0 {
			niches = append(niches, v)
		}
	}
	day := func(t time.Time) *exchangev1.CalendarDate {
		return &exchangev1.CalendarDate{Year: int32(t.Year()), Month: int32(t.Month()), Day: int32(t.Day())}
	}
	for a := range planAgencies {
		agency := planAgencyID(a)
		var set []*exchangev1.Plan
		for i := range n / planAgencies {
			c := countries[rng.IntN(len(countries))].Code
			provinces := geo.InCountry(c)
			p := &exchangev1.Plan{
				ExternalId: fmt.Sprintf("%s-%05d", agency, i), Title: "Plan", Stage: exchangev1.PlanStage(1 + rng.IntN(4)),
			}
			for _, k := range rng.Perm(len(niches))[:1+rng.IntN(3)] {
				p.Niches = append(p.Niches, niches[k])
			}
			if rng.IntN(10) == 0 || len(provinces) == 0 {
				p.Locations = []*exchangev1.LocationRef{{Country: c}}
			} else {
				for _, k := range rng.Perm(len(provinces))[:1+rng.IntN(min(4, len(provinces)))] {
					p.Locations = append(p.Locations, &exchangev1.LocationRef{Country: c, Subdivision: provinces[k].Code})
				}
			}
			start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, rng.IntN(6*365))
			p.PlannedPeriod = &exchangev1.DatePeriod{Start: day(start), End: day(start.AddDate(0, 0, 180+rng.IntN(900)))}
			switch r := rng.IntN(10); {
			case r < 6:
				p.Audience = &exchangev1.Audience{AllMembers: true}
			case r < 8:
				p.Audience = &exchangev1.Audience{WorkingGroups: []string{"workingGroups/un-wg"}}
			}
			set = append(set, p)
		}
		if _, err := st.ApplyPlans(ctx, store.Op{Actor: "agencies/" + agency, Method: "/alltogether.exchange.v1.PlanService/ApplyPlans"}, agency, set, store.ApplyOptions{}); err != nil {
			return fmt.Errorf("plans of %s: %w", agency, err)
		}
	}
	return nil
}
