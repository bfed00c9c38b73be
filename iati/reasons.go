package iati

// reasons says why parts of an IATI activity have no place in a plan, by
// element name or "@attribute" name; reasonFor falls back to a general
// reason for anything not listed.
var reasons = map[string]string{
	"reporting-org":          "the plan's owner is the importing agency, from its certificate",
	"other-identifier":       "a plan has one external id, the iati-identifier",
	"contact-info":           "contacts are kept as focal points in the directory, not on plans",
	"activity-scope":         "the scope is given by the plan's locations",
	"recipient-region":       "a region is not a location; name the countries and provinces",
	"country-budget-items":   "budget classifications of the recipient country are not kept",
	"humanitarian-scope":     "humanitarian emergency and appeal codes are not kept",
	"policy-marker":          "policy markers are not kept",
	"collaboration-type":     "the collaboration type is not kept",
	"default-flow-type":      "financing terms are not kept",
	"default-finance-type":   "financing terms are not kept",
	"default-aid-type":       "financing terms are not kept",
	"default-tied-status":    "financing terms are not kept",
	"planned-disbursement":   "disbursement schedules are not part of a plan; its budget is",
	"capital-spend":          "the capital spend share is not kept",
	"transaction":            "financial transactions are not part of a plan",
	"document-link":          "documents are not kept",
	"related-activity":       "links between activities are not kept",
	"legacy-data":            "legacy data is not kept",
	"conditions":             "conditions attached to the activity are not kept",
	"result":                 "results and indicators are reported through datasets, not plans",
	"crs-add":                "CRS reporting details are not kept",
	"fss":                    "forward spending surveys are not kept",
	"location-reach":         "whether the location is where the activity happens or where beneficiaries live is not kept",
	"location-id":            "the gazetteer identifier is not an ISO 3166-2 province code",
	"administrative":         "this administrative code is not an ISO 3166-2 province code",
	"point":                  "coordinates are not kept; plans are located by province",
	"exactness":              "coordinates are not kept",
	"location-class":         "the location class is not kept",
	"feature-designation":    "the feature designation is not kept",
	"description":            "descriptions of a location are not kept",
	"activity-description":   "descriptions of a location are not kept",
	"narrative":              "text not kept",
	"@last-updated-datetime": "the plan records its own update times",
	"@hierarchy":             "activity hierarchies are not kept",
	"@humanitarian":          "the humanitarian flag is not kept",
	"@budget-not-provided":   "the reason for a missing budget is not kept",
	"@linked-data-uri":       "linked-data URIs are not kept",
	"@linked-data-default":   "linked-data URIs are not kept",
	"@generated-datetime":    "file metadata",
	"@percentage":            "percentages are not kept",
	"@vocabulary-uri":        "vocabulary URIs are not kept",
	"@ref":                   "not an ISO 3166-2 province code",
	"@xml:lang":              "language tags are not kept",
	"@iso-date":              "not kept",
	"@type":                  "not kept",
	"@code":                  "not kept",
	"@vocabulary":            "not kept",
	"@level":                 "not kept",
	"@srsName":               "coordinates are not kept",
	"@value-date":            "the exchange-rate date of the value is not kept",
	"@default-currency":      "no budget used it",
	"@secondary-reporter":    "not kept",
}

// reasonFor returns the mapping's own reason when it gave one, else the
// reason for the name, else a general one.
func reasonFor(own, name string) string {
	if own != "" {
		return own
	}
	if r, ok := reasons[name]; ok {
		return r
	}
	if len(name) > 0 && name[0] == '@' {
		return "this attribute has no place in a plan"
	}
	return "this element has no place in a plan"
}
