package ui

import (
	"cmp"
	"net/http"
	"slices"
	"strings"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// directoryData is the directory page.
type directoryData struct {
	Agencies      []agencyRow
	FocalPoints   []focalPointRow
	WorkingGroups []workingGroupRow
}

// agencyRow is one agency.
type agencyRow struct {
	ID, Name, ShortName, Kind, Parent, Countries, Niches, Coverage, State string
}

// focalPointRow is one focal point, current or past.
type focalPointRow struct {
	Agency, Name, Topic, Role, Email, Phone, From, Until string
	// Current is true when today falls in the tenure.
	Current bool
}

// workingGroupRow is one working group with its members by role.
type workingGroupRow struct {
	ID, Name, Kind, Description, Members string
}

// directory serves the directory page.
func (d *Dashboard) directory(w http.ResponseWriter, r *http.Request) {
	p := d.newPage("Directory", "directory")
	ctx, cancel := callContext(r)
	defer cancel()
	data := &directoryData{}
	p.Data = data
	fail := func(err error) {
		code, msg := httpStatus(err)
		p.Error = msg
		d.render(w, code, "directory", p)
	}
	agencies, err := client.Collect(d.cfg.Client.Directory.Agencies(ctx, &exchangev1.ListAgenciesRequest{PageSize: 1000}))
	if err != nil {
		fail(err)
		return
	}
	for _, a := range agencies {
		data.Agencies = append(data.Agencies, agencyRow{
			ID: client.ResourceID(a.GetName()), Name: a.GetDisplayName(), ShortName: a.GetShortName(),
			Kind: enumText(a.GetKind(), "AGENCY_KIND_"), Parent: client.ResourceID(a.GetParent()),
			Countries: strings.Join(a.GetCountries(), ", "), Niches: nicheList(a.GetNiches()),
			Coverage: locationsText(a.GetCoverage()), State: enumText(a.GetState(), "AGENCY_STATE_"),
		})
	}
	fps, err := client.Collect(d.cfg.Client.Directory.FocalPoints(ctx, &exchangev1.ListFocalPointsRequest{Parent: "agencies/-", PageSize: 1000}))
	if err != nil {
		fail(err)
		return
	}
	today := d.cfg.Now().Format("2006-01-02")
	for _, fp := range fps {
		agency, _, _ := strings.Cut(strings.TrimPrefix(fp.GetName(), "agencies/"), "/")
		from, until := dateText(fp.GetTenure().GetStart()), dateText(fp.GetTenure().GetEnd())
		data.FocalPoints = append(data.FocalPoints, focalPointRow{
			Agency: agency, Name: fp.GetDisplayName(), Topic: fp.GetTopic(), Role: fp.GetRole(),
			Email: fp.GetEmail(), Phone: fp.GetPhone(), From: from, Until: until,
			Current: (from == "" || from <= today) && (until == "" || until >= today),
		})
	}
	// Current before past, then by agency and topic.
	slices.SortStableFunc(data.FocalPoints, func(a, b focalPointRow) int {
		if a.Current != b.Current {
			if a.Current {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(a.Agency, b.Agency), cmp.Compare(a.Topic, b.Topic), cmp.Compare(b.From, a.From))
	})
	groups, err := client.Collect(d.cfg.Client.Directory.WorkingGroups(ctx, &exchangev1.ListWorkingGroupsRequest{PageSize: 1000}))
	if err != nil {
		fail(err)
		return
	}
	for _, g := range groups {
		byRole := map[string][]string{}
		for _, m := range g.GetMembers() {
			role := enumText(m.GetRole(), "MEMBERSHIP_ROLE_")
			byRole[role] = append(byRole[role], client.ResourceID(m.GetAgency()))
		}
		var parts []string
		for _, role := range []string{"secretariat", "member", "observer"} {
			if len(byRole[role]) > 0 {
				parts = append(parts, role+": "+strings.Join(byRole[role], ", "))
			}
		}
		data.WorkingGroups = append(data.WorkingGroups, workingGroupRow{
			ID: client.ResourceID(g.GetName()), Name: g.GetDisplayName(), Kind: enumText(g.GetKind(), "WORKING_GROUP_KIND_"),
			Description: g.GetDescription(), Members: strings.Join(parts, "; "),
		})
	}
	d.render(w, http.StatusOK, "directory", p)
}
