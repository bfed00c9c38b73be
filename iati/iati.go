// Package iati reads activity files of the International Aid Transparency
// Initiative (the iati-activities XML of the IATI Standard, versions 2.01
// to 2.03) into the exchange's plans.
//
// # What maps to what
//
//	iati-identifier                     external_id
//	title/narrative                     title (one language)
//	description type 1 (or none)        description
//	description type 2, 4               description, as "Objectives:" and "Other:" paragraphs
//	description type 3                  target_groups (one per line or ";")
//	activity-status                     stage: 1 → CONCEPT, 2 → IN_IMPLEMENTATION,
//	                                    3, 4 → COMPLETED, 5 → CANCELLED,
//	                                    6 (suspended) → IN_IMPLEMENTATION, tagged
//	activity-date type 1, 3             planned_period (type 2, 4 when planned dates are missing)
//	activity-date type 2, 4             actual_period
//	recipient-country                   a whole-country location, unless a location
//	                                    names a province of the country (China:
//	                                    only through CN-YN and CN-GX); those of
//	                                    the transactions when the activity has none
//	location                            a province: an ISO 3166-2 code in
//	                                    administrative/@code, location-id/@code or
//	                                    @ref, or a name matching one province of the
//	                                    recipient countries; with an administrative
//	                                    level of 2 or more, the location's name
//	                                    becomes the area (district)
//	sector                              niches, through the table in sectors.go
//	                                    (those of the transactions when the
//	                                    activity has none);
//	                                    SDG sectors become tags
//	tag                                 tags ("sdg-target:8.7")
//	budget                              budget lines (period, value, status); a
//	                                    revised budget replaces the original of the
//	                                    same period; the total is their sum
//	participating-org role 1, 2, 3, 4   partners: funding, accountable, extending,
//	                                    implementing
//
// Everything else — and every attribute, translation or value the mapping
// cannot carry — is reported as Unmapped with its path and the reason;
// nothing is dropped silently. An activity that lacks what a plan needs (an
// identifier, a title, a status, a start date, a location, a niche) is
// reported with its Problems and no plan, and so is one that breaks the
// IATI standard in a way that bears on its plan: no place in the
// sub-region, budgets against the IATI ruleset (budgetrules.go), an
// element the schema allows once given twice (schema.go). docs/iati.md
// says what is refused and why.
//
// The package reads the XML with encoding/xml: no DTDs, no external
// entities, UTF-8 only, nesting bounded.
package iati

import (
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// versions are the IATI versions the package reads: the 2.0x versions of
// the IATI Version codelist (https://iatistandard.org/en/iati-standard/203/codelists/version/).
// The codelist's 1.0x versions are retired and refused.
var versions = []string{"2.01", "2.02", "2.03"}

// File is a parsed iati-activities document.
type File struct {
	// Version is the IATI version the file declares, for example "2.03".
	Version string
	// Activities are the file's activities, in order.
	Activities []Activity
	// Unmapped lists what the file holds outside its activities that has
	// no place in a plan.
	Unmapped []Unmapped
}

// Activity is one iati-activity and the plan it maps to.
type Activity struct {
	// Index is the activity's position in the file, from 0.
	Index int
	// Identifier is its iati-identifier.
	Identifier string
	// Plan is the plan it maps to, without owner or audience; nil when
	// Problems is not empty.
	Plan *exchangev1.Plan
	// Unmapped lists every element and attribute of the activity the
	// mapping could not carry into the plan.
	Unmapped []Unmapped
	// Problems say why the activity cannot become a plan.
	Problems []string
}

// Parse reads an iati-activities document. It fails only when the
// document is not an IATI 2.0x activity file at all; problems with single
// activities are reported on them.
func Parse(data []byte) (*File, error) {
	root, err := parseTree(data)
	if err != nil {
		return nil, err
	}
	if root.name != "iati-activities" {
		return nil, fmt.Errorf("the root element is <%s>, not <iati-activities>: not an IATI activity file", root.name)
	}
	root.used = true
	f := &File{Version: root.attr("version")}
	if !slices.Contains(versions, f.Version) {
		return nil, fmt.Errorf("IATI version %q is not in the IATI Version codelist for 2.0x: only %s files are read (versions 1.0x are retired)", shorten(f.Version), strings.Join(versions, ", "))
	}
	fileLang := root.attr("xml:lang")
	for _, c := range root.children {
		if c.name != "iati-activity" {
			continue
		}
		f.Activities = append(f.Activities, mapActivity(len(f.Activities), c, fileLang))
	}
	if len(f.Activities) == 0 {
		return nil, errors.New("the file has no iati-activity")
	}
	// Activities report their own parts; the file reports the rest.
	for _, c := range root.children {
		if c.name == "iati-activity" {
			continue
		}
		f.Unmapped = append(f.Unmapped, unused(c)...)
	}
	for _, a := range root.attrs {
		if !a.used {
			f.Unmapped = append(f.Unmapped, Unmapped{Path: root.path + "/@" + a.name, Value: shorten(a.value), Reason: reasonFor(a.reason, "@"+a.name)})
		}
	}
	return f, nil
}

// mapper carries what one activity's mapping needs.
type mapper struct {
	act      *node
	lang     string // the activity's default language
	currency string // the activity's default currency
	plan     *exchangev1.Plan
	problems []string
	losses   []Unmapped // mapped elements that lost something on the way
}

func (m *mapper) problem(format string, args ...any) {
	m.problems = append(m.problems, fmt.Sprintf(format, args...))
}

func mapActivity(index int, act *node, fileLang string) Activity {
	act.used = true
	m := &mapper{act: act, lang: act.attr("xml:lang"), currency: act.peek("default-currency"), plan: &exchangev1.Plan{}}
	if m.lang == "" {
		m.lang = fileLang
	}
	if m.lang == "" {
		m.lang = "en"
	}
	out := Activity{Index: index}
	m.schemaViolations()
	m.identifier()
	out.Identifier = m.plan.GetExternalId()
	m.title()
	m.descriptions()
	m.status()
	m.dates()
	m.locations()
	m.sectors()
	m.tags()
	m.budget()
	m.partners()
	out.Unmapped = append(unused(act), m.losses...)
	if len(m.problems) > 0 {
		out.Problems = m.problems
		return out
	}
	out.Plan = m.plan
	return out
}

// externalIDPattern reports whether s can be an external id: printable
// ASCII, at most 128 characters, no leading or trailing space (the
// pattern on Plan.external_id).
func externalIDPattern(s string) bool {
	if s == "" || len(s) > 128 || s[0] == ' ' || s[len(s)-1] == ' ' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

func (m *mapper) identifier() {
	n := m.act.first("iati-identifier")
	if n == nil || n.text == "" {
		m.problem("no iati-identifier: the plan's external id is required")
		return
	}
	n.used = true
	if !externalIDPattern(n.text) {
		m.problem("iati-identifier %q cannot be an external id (printable ASCII, at most 128 characters)", shorten(n.text))
		return
	}
	m.plan.ExternalId = n.text
}

// narrative picks the text of n in the activity's language: the narrative
// without xml:lang or in that language, else an English one, else the
// first. The others are left unmapped as translations.
func (m *mapper) narrative(n *node) string {
	nars := n.all("narrative")
	if len(nars) == 0 {
		return ""
	}
	pick := -1
	for i, nar := range nars {
		if l := nar.peek("xml:lang"); l == "" || strings.EqualFold(l, m.lang) {
			pick = i
			break
		}
	}
	if pick < 0 {
		for i, nar := range nars {
			if strings.EqualFold(nar.peek("xml:lang"), "en") {
				pick = i
				break
			}
		}
	}
	if pick < 0 {
		pick = 0
	}
	for i, nar := range nars {
		if i == pick {
			nar.used = true
			nar.attr("xml:lang")
			continue
		}
		nar.skip(fmt.Sprintf("a translation (%s); a plan keeps one language", nar.peek("xml:lang")))
	}
	return nars[pick].text
}

// clip shortens s to max characters, reporting the loss at path.
func (m *mapper) clip(path, s string, max int, what string) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	m.shortened(path, shorten(s), fmt.Sprintf("%s is longer than %d characters; shortened", what, max))
	return strings.TrimSpace(string([]rune(s)[:max-1])) + "…"
}

func (m *mapper) title() {
	n := m.act.first("title")
	if n != nil {
		n.used = true
		m.plan.Title = strings.Join(strings.Fields(m.narrative(n)), " ")
	}
	if m.plan.GetTitle() == "" {
		m.problem("no title")
		return
	}
	m.plan.Title = m.clip(n.path, m.plan.Title, 300, "the title")
}

// shortened records a loss on an element that is otherwise mapped.
func (m *mapper) shortened(path, value, reason string) {
	m.losses = append(m.losses, Unmapped{Path: path, Value: value, Reason: reason})
}

func (m *mapper) descriptions() {
	var general, extra []string
	for _, d := range m.act.all("description") {
		typ := d.attr("type")
		text := strings.TrimSpace(m.narrative(d))
		switch typ {
		case "", "1":
			general = append(general, text)
		case "2":
			extra = append(extra, "Objectives: "+text)
		case "3":
			m.targetGroups(d, text)
		case "4":
			extra = append(extra, "Other: "+text)
		default:
			d.skip("description type " + typ + " is not in the DescriptionType code list")
			continue
		}
		d.used = true
	}
	desc := strings.TrimSpace(strings.Join(append(general, extra...), "\n\n"))
	m.plan.Description = m.clip(m.act.path+"/description", desc, 10000, "the description (all types together)")
}

func (m *mapper) targetGroups(d *node, text string) {
	for _, part := range strings.FieldsFunc(text, func(r rune) bool { return r == '\n' || r == ';' }) {
		part = strings.Join(strings.Fields(part), " ")
		if part == "" {
			continue
		}
		if len(m.plan.TargetGroups) == 20 {
			m.shortened(d.path, shorten(part), "more than 20 target groups; the rest are left out")
			return
		}
		m.plan.TargetGroups = append(m.plan.TargetGroups, m.clip(d.path, part, 200, "a target group"))
	}
}

// activityStatus maps the IATI ActivityStatus code list to stages.
var activityStatus = map[string]exchangev1.PlanStage{
	"1": exchangev1.PlanStage_PLAN_STAGE_CONCEPT,           // Pipeline/identification
	"2": exchangev1.PlanStage_PLAN_STAGE_IN_IMPLEMENTATION, // Implementation
	"3": exchangev1.PlanStage_PLAN_STAGE_COMPLETED,         // Finalisation
	"4": exchangev1.PlanStage_PLAN_STAGE_COMPLETED,         // Closed
	"5": exchangev1.PlanStage_PLAN_STAGE_CANCELLED,         // Cancelled
	"6": exchangev1.PlanStage_PLAN_STAGE_IN_IMPLEMENTATION, // Suspended: no stage of its own
}

func (m *mapper) status() {
	n := m.act.first("activity-status")
	if n == nil {
		m.problem("no activity-status: a plan needs a stage")
		return
	}
	code := n.attr("code")
	stage, ok := activityStatus[code]
	if !ok {
		n.skip("not in the ActivityStatus code list")
		m.problem("activity-status %q is not in the ActivityStatus code list", code)
		return
	}
	n.used = true
	m.plan.Stage = stage
	if code == "6" {
		m.plan.Tags = append(m.plan.Tags, "iati:suspended")
		m.shortened(n.path, code, "suspended (6) has no stage of its own: mapped to IN_IMPLEMENTATION and tagged iati:suspended")
	}
}

// parseDate reads an xsd:date, ignoring a time zone suffix.
func parseDate(s string) (*exchangev1.CalendarDate, bool) {
	if len(s) < 10 {
		return nil, false
	}
	t, err := time.Parse("2006-01-02", s[:10])
	if err != nil || t.Year() < 1900 || t.Year() > 9999 {
		return nil, false
	}
	return &exchangev1.CalendarDate{Year: int32(t.Year()), Month: int32(t.Month()), Day: int32(t.Day())}, true
}

func dateNumber(d *exchangev1.CalendarDate) int {
	return int(d.GetYear())*10000 + int(d.GetMonth())*100 + int(d.GetDay())
}

func (m *mapper) dates() {
	byType := map[string]*exchangev1.CalendarDate{}
	nodes := map[string]*node{}
	for _, n := range m.act.all("activity-date") {
		typ := n.peek("type")
		if typ < "1" || typ > "4" || len(typ) != 1 {
			n.skip("activity-date type " + typ + " is not in the ActivityDateType code list")
			continue
		}
		if byType[typ] != nil {
			n.skip("a second activity-date of type " + typ + "; the first is used")
			continue
		}
		d, ok := parseDate(n.peek("iso-date"))
		if !ok {
			n.skip("iso-date " + n.peek("iso-date") + " is not a date")
			continue
		}
		byType[typ], nodes[typ] = d, n
	}
	use := func(typ string) *exchangev1.CalendarDate {
		if n := nodes[typ]; n != nil {
			n.used = true
			n.attr("type")
			n.attr("iso-date")
		}
		return byType[typ]
	}
	start, end := byType["1"], byType["3"]
	if start == nil {
		start = byType["2"]
	}
	if end == nil {
		end = byType["4"]
	}
	if start == nil {
		m.problem("no start date (activity-date type 1 or 2): a plan needs a planned period")
		return
	}
	if end != nil && dateNumber(end) < dateNumber(start) {
		for _, t := range []string{"3", "4"} {
			if byType[t] == end {
				nodes[t].skip("the end date is before the start date")
			}
		}
		end = nil
	}
	if byType["1"] != nil {
		use("1")
	}
	if byType["3"] != nil && byType["3"] == end {
		use("3")
	}
	m.plan.PlannedPeriod = &exchangev1.DatePeriod{Start: start, End: end}
	if as := byType["2"]; as != nil {
		use("2")
		ap := &exchangev1.DatePeriod{Start: as}
		if ae := byType["4"]; ae != nil && dateNumber(ae) >= dateNumber(as) {
			use("4")
			ap.End = ae
		}
		m.plan.ActualPeriod = ap
	}
	if byType["4"] != nil && byType["4"] == end {
		use("4")
	}
	if n := nodes["4"]; n != nil && !n.used && n.reason == "" {
		n.skip("an actual end date without an actual start date")
	}
}

// isoSubdivision reports whether code looks like an ISO 3166-2 code.
func isoSubdivision(code string) bool {
	c, rest, ok := strings.Cut(code, "-")
	if !ok || len(c) != 2 || len(rest) < 1 || len(rest) > 3 {
		return false
	}
	for _, r := range c {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	for _, r := range rest {
		if (r < 'A' || r > 'Z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// nameKey folds a place name for matching: lower case letters and digits
// only, diacritics and a trailing "province"/"region"/"state" dropped.
func nameKey(s string) string {
	k := fullKey(s)
	for _, suffix := range []string{"province", "region", "state", "municipality", "prefecture"} {
		if t := strings.TrimSuffix(k, suffix); t != "" {
			k = t
		}
	}
	return k
}

// fullKey folds a place name like nameKey but keeps a trailing
// "province" or "prefecture", so that "Vientiane Prefecture" is told from
// "Vientiane Province".
func fullKey(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case r > unicode.MaxASCII && unicode.IsLetter(r):
			b.WriteRune(fold(r))
		}
	}
	return b.String()
}

// fold maps the Latin letters with diacritics used in the region's
// romanised names to their base letter.
func fold(r rune) rune {
	const from, to = "àáâãäåăạảấầẩẫậắằẳẵặèéêëẹẻẽếềểễệìíîïịỉĩòóôõöơọỏốồổỗộớờởỡợùúûüưụủũứừửữựỳýỷỹỵđ", "aaaaaaaaaaaaaaaaaaeeeeeeeeeeeeeiiiiiiiooooooooooooooooooouuuuuuuuuuuuuyyyyyd"
	fr, tr := []rune(from), []rune(to)
	for i, c := range fr {
		if c == r {
			return tr[i]
		}
	}
	return r
}

func (m *mapper) addTag(tag string) {
	if tag == "" || slices.Contains(m.plan.Tags, tag) {
		return
	}
	tag = m.clip(m.act.path+"/tag", tag, 64, "a tag")
	if len(m.plan.Tags) < 30 {
		m.plan.Tags = append(m.plan.Tags, tag)
	} else {
		m.shortened(m.act.path, tag, "more than 30 tags; the rest are left out")
	}
}

func (m *mapper) sectors() {
	var niches []exchangev1.Niche
	nodes := m.act.all("sector")
	fromTransactions := len(nodes) == 0
	if fromTransactions {
		// IATI 2.0x allows sectors on every transaction instead.
		for _, t := range m.act.all("transaction") {
			nodes = append(nodes, t.all("sector")...)
		}
	}
	for _, n := range nodes {
		vocab, code := n.peek("vocabulary"), n.peek("code")
		switch vocab {
		case "7":
			m.addTag("sdg-goal:" + code)
		case "8":
			m.addTag("sdg-target:" + code)
		default:
			ns := SectorNiches(vocab, code)
			if len(ns) == 0 {
				if vocab == "" || vocab == "1" || vocab == "2" {
					n.skip("DAC sector " + code + " maps to no niche (see the table in iati/sectors.go)")
				} else {
					n.skip("sector vocabulary " + vocab + " has no mapping to niches; only DAC codes (vocabulary 1 and 2) and SDGs (7 and 8) are read")
				}
				continue
			}
			for _, x := range ns {
				if !slices.Contains(niches, x) {
					niches = append(niches, x)
				}
			}
		}
		n.used = true
		n.attr("vocabulary")
		n.attr("code")
		n.skipAttr("percentage", "a plan's niches carry no percentages")
	}
	if fromTransactions && len(niches) > 0 {
		for _, t := range m.act.all("transaction") {
			if t.reason == "" {
				t.skip("financial transactions are not part of a plan; the recipient countries and sectors given on them were used")
			}
		}
	}
	if len(niches) == 0 {
		m.problem("no sector maps to a niche (see the table in iati/sectors.go): a plan needs a niche")
	}
	m.plan.Niches = niches
}

func (m *mapper) tags() {
	for _, n := range m.act.all("tag") {
		vocab, code := n.peek("vocabulary"), n.peek("code")
		var tag string
		switch vocab {
		case "2":
			tag = "sdg-goal:" + code
		case "3":
			tag = "sdg-target:" + code
		case "1":
			tag = "agrovoc:" + code
		default:
			if text := strings.Join(strings.Fields(m.narrative(n)), " "); text != "" {
				tag = text
			} else if code != "" {
				tag = "iati-tag:" + vocab + ":" + code
			}
		}
		if tag == "" || strings.ContainsFunc(tag, unicode.IsControl) {
			n.skip("a tag with no code or text")
			continue
		}
		m.addTag(tag)
		n.used = true
		n.attr("vocabulary")
		n.attr("code")
		for _, nar := range n.all("narrative") {
			if !nar.used && nar.reason == "" {
				nar.skip("the tag is kept by its code")
			}
		}
	}
}

// decimal parses a non-negative xsd:decimal.
func decimal(s string) (*big.Rat, bool) {
	s = strings.TrimSpace(s)
	if s == "" || strings.ContainsAny(s, "eE/") {
		return nil, false
	}
	r, ok := new(big.Rat).SetString(strings.TrimPrefix(s, "+"))
	if !ok || r.Sign() < 0 {
		return nil, false
	}
	return r, true
}

// formatDecimal writes r with at most four decimals, in shortest form.
func formatDecimal(r *big.Rat) string {
	s := r.FloatString(4)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// budgetLine is one budget element of an activity, read.
type budgetLine struct {
	n       *node
	revised bool
	start   *exchangev1.CalendarDate
	end     *exchangev1.CalendarDate
	value   *big.Rat
	curr    string
	status  exchangev1.PlanBudgetStatus
	// defaultCurrency is set when the currency is the activity's.
	defaultCurrency bool
}

func (m *mapper) budget() {
	type line = budgetLine
	var lines []*line
	for _, n := range m.act.all("budget") {
		l := &line{n: n, revised: n.peek("type") == "2", status: exchangev1.PlanBudgetStatus_PLAN_BUDGET_STATUS_INDICATIVE}
		if n.peek("status") == "2" {
			l.status = exchangev1.PlanBudgetStatus_PLAN_BUDGET_STATUS_COMMITTED
		}
		ps, pe, v := n.first("period-start"), n.first("period-end"), n.first("value")
		var ok bool
		if ps == nil || pe == nil || v == nil {
			n.skip("a budget needs period-start, period-end and value")
			continue
		}
		if l.start, ok = parseDate(ps.peek("iso-date")); !ok {
			n.skip("period-start is not a date")
			continue
		}
		if l.end, ok = parseDate(pe.peek("iso-date")); !ok {
			n.skip("period-end is not a date")
			continue
		}
		if l.value, ok = decimal(v.text); !ok {
			n.skip("value " + shorten(v.text) + " is not a non-negative decimal number")
			continue
		}
		l.curr = strings.ToUpper(v.peek("currency"))
		if l.curr == "" {
			l.curr, l.defaultCurrency = strings.ToUpper(m.currency), true
		}
		if len(l.curr) != 3 {
			n.skip("no currency (value/@currency or the activity's default-currency)")
			continue
		}
		lines = append(lines, l)
	}
	if !m.budgetRules(lines) {
		leaveOut(lines)
		return
	}
	// A revised budget replaces the original one for the same period.
	var kept []*line
	for _, l := range lines {
		superseded := false
		for _, o := range lines {
			if o != l && o.revised && !l.revised && dateNumber(o.start) == dateNumber(l.start) && dateNumber(o.end) == dateNumber(l.end) {
				superseded = true
			}
		}
		if superseded {
			l.n.skip("an original budget replaced by the revised budget for the same period")
			continue
		}
		kept = append(kept, l)
	}
	if len(kept) == 0 {
		return
	}
	currency := kept[0].curr
	budget := &exchangev1.PlanBudget{CurrencyCode: currency}
	total := new(big.Rat)
	for _, l := range kept {
		if l.curr != currency {
			l.n.skip("a budget in " + l.curr + "; the plan's budget is in " + currency + " and holds one currency")
			continue
		}
		if len(budget.Lines) == 50 {
			l.n.skip("more than 50 budget lines")
			continue
		}
		n := l.n
		n.used = true
		n.attr("type")
		n.attr("status")
		for _, c := range []string{"period-start", "period-end"} {
			if p := n.first(c); p != nil {
				p.used = true
				p.attr("iso-date")
			}
		}
		if l.defaultCurrency {
			m.act.attr("default-currency")
		}
		v := n.first("value")
		v.used = true
		v.attr("currency")
		v.skipAttr("value-date", "the exchange-rate date of the value is not kept")
		budget.Lines = append(budget.Lines, &exchangev1.PlanBudgetLine{
			Period: &exchangev1.DatePeriod{Start: l.start, End: l.end},
			Amount: formatDecimal(l.value),
			Status: l.status,
		})
		total.Add(total, l.value)
	}
	budget.TotalAmount = formatDecimal(total)
	m.plan.Budget = budget
}

// orgRoles maps the IATI OrganisationRole code list to partner roles.
var orgRoles = map[string]exchangev1.PlanPartnerRole{
	"1": exchangev1.PlanPartnerRole_PLAN_PARTNER_ROLE_FUNDING,
	"2": exchangev1.PlanPartnerRole_PLAN_PARTNER_ROLE_ACCOUNTABLE,
	"3": exchangev1.PlanPartnerRole_PLAN_PARTNER_ROLE_EXTENDING,
	"4": exchangev1.PlanPartnerRole_PLAN_PARTNER_ROLE_IMPLEMENTING,
}

func (m *mapper) partners() {
	byKey := map[string]*exchangev1.PlanPartner{}
	for _, n := range m.act.all("participating-org") {
		role, ok := orgRoles[n.peek("role")]
		if !ok {
			n.skip("participating-org role " + n.peek("role") + " is not in the OrganisationRole code list")
			continue
		}
		ref := n.peek("ref")
		if ref != "" && (len(ref) > 100 || !externalIDPattern(ref) || strings.Contains(ref, " ")) {
			n.skipAttr("ref", "not an organisation identifier (printable ASCII without spaces, at most 100 characters)")
			ref = ""
		}
		name := m.clip(n.path, strings.Join(strings.Fields(m.narrative(n)), " "), 200, "the organisation's name")
		if name == "" {
			name = ref
		}
		if name == "" {
			n.skip("an organisation with neither a ref nor a name")
			continue
		}
		n.used = true
		n.attr("role")
		if ref != "" {
			n.attr("ref")
		}
		n.skipAttr("type", "the organisation type is not kept")
		n.skipAttr("activity-id", "the organisation's own activity id is not kept")
		n.skipAttr("crs-channel-code", "the CRS channel code is not kept")
		key := "ref:" + ref
		if ref == "" {
			key = "name:" + strings.ToLower(name)
		}
		p := byKey[key]
		if p == nil {
			if len(m.plan.Partners) == 50 {
				n.used = false
				n.skip("more than 50 partners")
				continue
			}
			p = &exchangev1.PlanPartner{DisplayName: name, IatiRef: ref}
			byKey[key] = p
			m.plan.Partners = append(m.plan.Partners, p)
		}
		if !slices.Contains(p.Roles, role) {
			p.Roles = append(p.Roles, role)
		}
	}
}
