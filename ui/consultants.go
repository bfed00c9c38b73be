package ui

import (
	"cmp"
	"net/http"
	"slices"
	"strings"

	"github.com/alltogether/exchange/client"
)

// consultantsData is the consultants page.
type consultantsData struct {
	Consultants []consultantRow
	Engagements []engagementRow
}

// consultantRow is one consultant of the roster.
type consultantRow struct {
	// ID is "agency/id", as exchangectl names a consultant.
	ID, Name, AddedBy, Expertise, Languages, Provinces, Available, Consent string
	// Listed is true when the consultant consented to be listed to other
	// agencies.
	Listed bool
}

// engagementRow is one booking of a consultant.
type engagementRow struct {
	Consultant, Name, Agency, From, To, Niche, Purpose string
}

// consultants serves the roster the caller may see and the engagements
// it may see: those it booked and those of consultants it added.
func (d *Dashboard) consultants(w http.ResponseWriter, r *http.Request) {
	p := d.newPage("Consultants", "consultants")
	ctx, cancel := callContext(r)
	defer cancel()
	data := &consultantsData{}
	p.Data = data
	list, err := client.Collect(d.cfg.Client.Consultants.Consultants(ctx, nil))
	if err != nil {
		code, msg := httpStatus(err)
		p.Error = msg
		d.render(w, code, "consultants", p)
		return
	}
	for _, k := range list {
		id := consultantID(k.GetName())
		var windows []string
		for _, a := range k.GetAvailability() {
			windows = append(windows, dateText(a.GetStart())+" to "+dateText(a.GetEnd()))
		}
		consent := "not given: listed to its agency alone"
		if k.GetConsent() != nil {
			consent = strings.TrimSpace("given " + dateText(k.GetConsent().GetGivenOn()) + " " + k.GetConsent().GetRecord())
		}
		data.Consultants = append(data.Consultants, consultantRow{
			ID: id, Name: cmp.Or(k.GetDisplayName(), "(erased)"), AddedBy: client.ResourceID(k.GetOwner()),
			Expertise: nicheList(k.GetNiches()), Languages: strings.Join(k.GetLanguages(), ", "),
			Provinces: strings.Join(k.GetProvinces(), ", "), Available: strings.Join(windows, ", "),
			Consent: consent, Listed: k.GetConsent() != nil,
		})
		engagements, err := client.Collect(d.cfg.Client.Consultants.Engagements(ctx, k.GetName()))
		if err != nil {
			code, msg := httpStatus(err)
			p.Error = msg
			d.render(w, code, "consultants", p)
			return
		}
		for _, e := range engagements {
			if e.GetCancelTime() != nil {
				continue // the page shows who holds which weeks; a cancelled engagement holds none
			}
			data.Engagements = append(data.Engagements, engagementRow{
				Consultant: id, Name: k.GetDisplayName(), Agency: client.ResourceID(e.GetAgency()),
				From: dateText(e.GetPeriod().GetStart()), To: dateText(e.GetPeriod().GetEnd()),
				Niche: nicheText(e.GetNiche()), Purpose: e.GetPurpose(),
			})
		}
	}
	slices.SortStableFunc(data.Engagements, func(a, b engagementRow) int {
		return cmp.Or(cmp.Compare(a.From, b.From), cmp.Compare(a.Consultant, b.Consultant))
	})
	d.render(w, http.StatusOK, "consultants", p)
}

// consultantID is "agency/id" for "agencies/agency/consultants/id".
func consultantID(name string) string {
	return strings.Replace(strings.TrimPrefix(name, "agencies/"), "/consultants/", "/", 1)
}
