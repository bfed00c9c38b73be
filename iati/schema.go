package iati

import (
	"fmt"
	"strings"
)

// onlyOnce lists the children of iati-activity that the IATI 2.03
// activity schema (iati-activities-schema.xsd, IATI/IATI-Schemas) allows
// at most once (maxOccurs="1"), in schema order.
var onlyOnce = []string{
	"iati-identifier", "reporting-org", "title", "activity-status",
	"activity-scope", "country-budget-items", "collaboration-type",
	"default-flow-type", "default-finance-type", "default-tied-status",
	"capital-spend", "conditions", "crs-add", "fss",
}

// schemaViolations reports the children of an activity that appear more
// often than the IATI schema allows: an activity with two titles or two
// statuses is not valid IATI, and which one the publisher meant cannot be
// guessed.
func (m *mapper) schemaViolations() {
	for _, name := range onlyOnce {
		ns := m.act.all(name)
		if len(ns) < 2 {
			continue
		}
		paths := make([]string, len(ns))
		for i, n := range ns {
			paths[i] = n.path
			n.skip(fmt.Sprintf("schema violation: the IATI activity schema allows one %s per activity, this one has %d", name, len(ns)))
		}
		m.problem("schema violation: the IATI activity schema allows one %s per activity; this one has %d (%s)", name, len(ns), strings.Join(paths, ", "))
	}
}
