package store

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"slices"
	"testing"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

const (
	prevention = exchangev1.Niche_NICHE_PREVENTION
	shelter    = exchangev1.Niche_NICHE_SHELTER
	legalAid   = exchangev1.Niche_NICHE_LEGAL_AID
	active     = exchangev1.AgencyState_AGENCY_STATE_ACTIVE
	suspended  = exchangev1.AgencyState_AGENCY_STATE_SUSPENDED
)

func TestListAgenciesByIndex(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	op := secretariat("UpdateAgency")
	mustCreateAgency(t, s, "a1", agencyMsg("A1", []string{"KH", "TH"}, []exchangev1.Niche{prevention}, "KH-12"))
	mustCreateAgency(t, s, "a2", agencyMsg("A2", []string{"KH"}, []exchangev1.Niche{shelter}, "KH-12", "KH-12", "KH-3"))
	mustCreateAgency(t, s, "a3", agencyMsg("A3", []string{"TH"}, []exchangev1.Niche{prevention, shelter}, "TH-10"))
	mustCreateAgency(t, s, "a4", agencyMsg("A4", []string{"VN"}, nil))

	type query struct {
		f    AgencyFilter
		want []string
	}
	check := func(t *testing.T, queries []query) {
		t.Helper()
		for _, q := range queries {
			for _, size := range []int32{1, 1000} {
				got := listAll(t, size, func(p Page) ([]*exchangev1.Agency, string, error) { return s.ListAgencies(ctx, q.f, p) })
				var want []string
				for _, id := range q.want {
					want = append(want, AgencyPrefix+id)
				}
				if !slices.Equal(names(got), want) {
					t.Errorf("ListAgencies(%+v, size %d) = %v, want %v", q.f, size, names(got), want)
				}
			}
		}
		checkIndexes(t, s)
	}

	t.Run("after create", func(t *testing.T) {
		check(t, []query{
			{AgencyFilter{}, []string{"a1", "a2", "a3", "a4"}},
			{AgencyFilter{Country: "KH"}, []string{"a1", "a2"}},
			{AgencyFilter{Country: "TH"}, []string{"a1", "a3"}},
			{AgencyFilter{Country: "LA"}, nil},
			{AgencyFilter{Niche: prevention}, []string{"a1", "a3"}},
			{AgencyFilter{Niche: shelter}, []string{"a2", "a3"}},
			{AgencyFilter{Subdivision: "KH-12"}, []string{"a1", "a2"}},
			{AgencyFilter{Subdivision: "KH-3"}, []string{"a2"}},
			{AgencyFilter{State: active}, []string{"a1", "a2", "a3", "a4"}},
			{AgencyFilter{State: suspended}, nil},
			{AgencyFilter{Country: "TH", Niche: shelter}, []string{"a3"}},
			{AgencyFilter{Subdivision: "KH-12", Country: "TH"}, []string{"a1"}},
		})
	})

	// a2 leaves Cambodia for Lao PDR and changes niche; a3 is suspended.
	if _, err := s.UpdateAgency(ctx, op, "agencies/a2", "", func(a *exchangev1.Agency) error {
		a.Countries = []string{"LA"}
		a.Niches = []exchangev1.Niche{legalAid}
		a.Coverage = []*exchangev1.LocationRef{{Country: "LA", Subdivision: "LA-VT"}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateAgency(ctx, op, "agencies/a3", "", func(a *exchangev1.Agency) error {
		a.State = suspended
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	t.Run("after update", func(t *testing.T) {
		check(t, []query{
			{AgencyFilter{}, []string{"a1", "a2", "a3", "a4"}},
			{AgencyFilter{Country: "KH"}, []string{"a1"}},
			{AgencyFilter{Country: "LA"}, []string{"a2"}},
			{AgencyFilter{Niche: shelter}, []string{"a3"}},
			{AgencyFilter{Niche: legalAid}, []string{"a2"}},
			{AgencyFilter{Subdivision: "KH-12"}, []string{"a1"}},
			{AgencyFilter{Subdivision: "KH-3"}, nil},
			{AgencyFilter{Subdivision: "LA-VT"}, []string{"a2"}},
			{AgencyFilter{State: suspended}, []string{"a3"}},
			{AgencyFilter{State: active}, []string{"a1", "a2", "a4"}},
			{AgencyFilter{Country: "TH", State: active}, []string{"a1"}},
		})
	})
}

func TestPagination(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	// agency-00 … agency-09: those with i%3 == 0 work in TH, the others
	// in KH; the even ones are suspended, so the last key (agency-09)
	// fails the state filter and the walk must end without an empty page.
	var all, inKH, susp, thSusp []string
	for i := range 10 {
		id := fmt.Sprintf("agency-%02d", i)
		name := AgencyPrefix + id
		country := "KH"
		if i%3 == 0 {
			country = "TH"
		}
		mustCreateAgency(t, s, id, agencyMsg(id, []string{country}, nil))
		all = append(all, name)
		if country == "KH" {
			inKH = append(inKH, name)
		}
		if i%2 == 0 {
			susp = append(susp, name)
			if country == "TH" {
				thSusp = append(thSusp, name)
			}
			if _, err := s.UpdateAgency(ctx, secretariat("SuspendAgency"), name, "", func(a *exchangev1.Agency) error {
				a.State = suspended
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	filters := []struct {
		name string
		f    AgencyFilter
		want []string
	}{
		{"all", AgencyFilter{}, all},                                                 // primary bucket
		{"country", AgencyFilter{Country: "KH"}, inKH},                               // index
		{"state", AgencyFilter{State: suspended}, susp},                              // filter that skips records
		{"country and state", AgencyFilter{Country: "TH", State: suspended}, thSusp}, // index and filter
		{"none", AgencyFilter{Country: "MM"}, nil},                                   // empty
	}
	for _, ft := range filters {
		for _, size := range []int32{1, 2, 3, 1000, 0} {
			t.Run(fmt.Sprintf("%s/size=%d", ft.name, size), func(t *testing.T) {
				var got []string
				p := Page{Size: size}
				pages := 0
				for {
					if pages > 100 {
						t.Fatal("pagination does not end")
					}
					items, next, err := s.ListAgencies(ctx, ft.f, p)
					if err != nil {
						t.Fatal(err)
					}
					pages++
					got = append(got, names(items)...)
					if size > 0 && len(items) > int(size) {
						t.Fatalf("page of %d items for size %d", len(items), size)
					}
					if next == "" {
						if len(items) == 0 && len(got) > 0 {
							t.Error("last page is empty")
						}
						break
					}
					if len(items) == 0 || (size > 0 && len(items) != int(size)) {
						t.Errorf("page %d has %d items and a next token; want a full page", pages, len(items))
					}
					p.Token = next
				}
				if !slices.Equal(got, ft.want) {
					t.Errorf("pages gave %v, want each of %v exactly once, in order", got, ft.want)
				}
				limit := int(size)
				if size == 0 {
					limit = DefaultPageSize
				}
				if wantPages := max(1, (len(ft.want)+limit-1)/limit); pages != wantPages {
					t.Errorf("%d pages, want %d", pages, wantPages)
				}
			})
		}
	}

	t.Run("bad tokens", func(t *testing.T) {
		_, kh, err := s.ListAgencies(ctx, AgencyFilter{Country: "KH"}, Page{Size: 1})
		if err != nil || kh == "" {
			t.Fatalf("first page: %q, %v", kh, err)
		}
		raw, _ := base64.RawURLEncoding.DecodeString(kh)
		tests := []struct {
			name  string
			f     AgencyFilter
			token string
		}{
			{"other country", AgencyFilter{Country: "TH"}, kh},
			{"other filter kind", AgencyFilter{Niche: prevention}, kh},
			{"no filter", AgencyFilter{}, kh},
			{"more filters", AgencyFilter{Country: "KH", State: active}, kh},
			{"garbage", AgencyFilter{Country: "KH"}, "not a token!"},
			{"base64 of nothing", AgencyFilter{Country: "KH"}, base64.RawURLEncoding.EncodeToString([]byte("hello, world"))},
			{"fingerprint only", AgencyFilter{Country: "KH"}, base64.RawURLEncoding.EncodeToString(raw[:8])},
			{"fingerprint only, no filter", AgencyFilter{}, s.pageTokens().encode(query("agencies", "", exchangev1.Niche(0).String(), "", exchangev1.AgencyState(0).String()), nil)},
			{"padded", AgencyFilter{Country: "KH"}, kh + "="},
			{"line break", AgencyFilter{Country: "KH"}, kh[:4] + "\n" + kh[4:]},
			{"key outside the prefix", AgencyFilter{Country: "KH"}, s.pageTokens().encode(query("agencies", "KH", exchangev1.Niche(0).String(), "", exchangev1.AgencyState(0).String()), []byte("TH\x00agency-00"))},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, _, err := s.ListAgencies(ctx, tt.f, Page{Token: tt.token})
				if e := wantKind(t, err, KindInvalidArgument); e.Field != "page_token" {
					t.Errorf("error field = %q, want page_token", e.Field)
				}
			})
		}
	})
}

func TestPageLimit(t *testing.T) {
	for _, tt := range []struct {
		size int32
		want int
	}{{0, DefaultPageSize}, {-5, DefaultPageSize}, {1, 1}, {MaxPageSize, MaxPageSize}, {MaxPageSize + 1, MaxPageSize}, {1 << 30, MaxPageSize}} {
		if got := (Page{Size: tt.size}).limit(); got != tt.want {
			t.Errorf("Page{Size: %d}.limit() = %d, want %d", tt.size, got, tt.want)
		}
	}
}

// FuzzPageToken feeds pageTokens.decode arbitrary tokens: it must never
// panic, and a token it accepts must be exactly the one encode makes for the
// key it returns.
func FuzzPageToken(f *testing.F) {
	fp := query("agencies", "KH", "", "", "")
	pt := newPageTokens(bytes.Repeat([]byte{7}, 32))
	f.Add("", "agencies")
	f.Add(pt.encode(fp, []byte("KH\x00iom")), "agencies")
	f.Add(pt.encode(fp, []byte{0, 0, 0, 1, 0xff}), "agencies")
	f.Add(pt.encode(fp, []byte("x")), "focal_points")
	f.Add(pt.encode(fp, nil), "agencies")
	f.Add(pt.encode(fp, []byte("KH\x00iom"))+"\n", "agencies")
	f.Add(base64.URLEncoding.EncodeToString(append(bytes.Clone(fp), 'k')), "agencies")
	f.Add("AB", "agencies")
	f.Add("!!!!", "agencies")
	f.Add("AAAAAAAAAAAB", "agencies")
	f.Fuzz(func(t *testing.T, token, list string) {
		fingerprint := fp
		if list != "agencies" {
			fingerprint = query(list)
		}
		key, err := pt.decode(token, fingerprint)
		if err != nil {
			if KindOf(err) != KindInvalidArgument {
				t.Fatalf("decode(%q) error kind %v, want invalid argument", token, KindOf(err))
			}
			return
		}
		if token == "" {
			if key != nil {
				t.Fatalf("empty token decoded to %q", key)
			}
			return
		}
		if len(key) == 0 {
			t.Fatalf("decode(%q) accepted an empty key", token)
		}
		if again := pt.encode(fingerprint, key); again != token {
			t.Fatalf("decode(%q) = %q, which encodes as %q", token, key, again)
		}
	})
}
