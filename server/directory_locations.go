package server

import (
	"context"
	"encoding/base64"
	"sort"
	"strings"

	"github.com/alltogether/exchange/geo"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// locationPrefix starts every location resource name.
const locationPrefix = "locations/"

func locationOf(s geo.Subdivision) *exchangev1.Location {
	return &exchangev1.Location{
		Name: locationPrefix + s.Code, Code: s.Code, Country: s.Country,
		DisplayName: s.Name, LocalName: s.LocalName, Kind: s.Kind,
	}
}

// GetLocation returns one province from the embedded list; for the code
// of an absorbed unit, NOT_FOUND naming the unit that absorbed it.
func (d *directoryService) GetLocation(_ context.Context, req *exchangev1.GetLocationRequest) (*exchangev1.GetLocationResponse, error) {
	code := strings.TrimPrefix(req.GetName(), locationPrefix)
	s, ok := geo.Lookup(code)
	if a, absorbed := geo.Absorbed(code); !ok && absorbed {
		return nil, absorbedLocation(req.GetName(), a)
	}
	if !ok {
		return nil, notFound(req.GetName())
	}
	return &exchangev1.GetLocationResponse{Location: locationOf(s)}, nil
}

// ListLocations pages through the embedded list in code order. The page
// token is the last code returned, tied to the country filter.
func (d *directoryService) ListLocations(_ context.Context, req *exchangev1.ListLocationsRequest) (*exchangev1.ListLocationsResponse, error) {
	all := geo.Subdivisions()
	if req.GetCountry() != "" {
		all = geo.InCountry(req.GetCountry())
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Code < all[j].Code })
	start := 0
	if tok := req.GetPageToken(); tok != "" {
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		country, last, ok := strings.Cut(string(raw), "|")
		if err != nil || !ok || country != req.GetCountry() {
			return nil, invalidField("page_token", "not valid for this request (it must come from a response to the same request)")
		}
		start = sort.Search(len(all), func(i int) bool { return all[i].Code > last })
	}
	size := int(req.GetPageSize())
	if size <= 0 {
		size = store.DefaultPageSize
	}
	end := min(start+size, len(all))
	resp := &exchangev1.ListLocationsResponse{}
	for _, s := range all[start:end] {
		resp.Locations = append(resp.Locations, locationOf(s))
	}
	if end < len(all) {
		resp.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(req.GetCountry() + "|" + all[end-1].Code))
	}
	return resp, nil
}
