package iati

import exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"

// This file is the documented mapping from IATI sectors to the exchange's
// niches. IATI activities name their sectors with the OECD DAC CRS purpose
// codes: 5-digit codes (sector vocabulary 1, the default) and 3-digit
// categories (vocabulary 2). The exchange's niches are narrower and cut
// across the DAC list, so a code maps to a niche only where the code's
// definition covers work that the niche names; codes that are too broad
// to say (for example 151 "Government & civil society, general", or 16050
// "Multisector aid for basic social services") are reported as unmapped
// rather than guessed, and so are codes for spending in donor countries
// (93010 "Refugees/asylum seekers in donor countries", 99820 "Promotion of
// development awareness"), which is not work in the sub-region. An
// activity needs at least one mapped sector to become a plan. The table
// is documented, code by code with the DAC description, in docs/iati.md;
// a test keeps the two equal.
//
// SDG goals and targets given as sectors (vocabularies 7 and 8) become
// tags, "sdg-goal:8" and "sdg-target:8.7", as do the SDG tags of the tag
// element; other vocabularies (COFOG, NACE, the reporting organisation's
// own) are reported as unmapped.
//
// Codes and definitions: IATI Sector and SectorCategory code lists
// (https://iatistandard.org/en/iati-standard/203/codelists/sector/).

// dacSectors maps DAC 5-digit purpose codes to niches.
var dacSectors = map[string][]exchangev1.Niche{
	// Education.
	"11220": {exchangev1.Niche_NICHE_NON_FORMAL_EDUCATION},   // Primary education (formal and non-formal)
	"11230": {exchangev1.Niche_NICHE_NON_FORMAL_EDUCATION},   // Basic life skills for adults (literacy, numeracy)
	"11231": {exchangev1.Niche_NICHE_NON_FORMAL_EDUCATION},   // Basic life skills for youth
	"11232": {exchangev1.Niche_NICHE_NON_FORMAL_EDUCATION},   // Primary education equivalent for adults
	"11330": {exchangev1.Niche_NICHE_LIVELIHOODS_AND_SKILLS}, // Vocational training
	"16020": {exchangev1.Niche_NICHE_LIVELIHOODS_AND_SKILLS}, // Employment creation (incl. for vulnerable groups)
	"32130": {exchangev1.Niche_NICHE_LIVELIHOODS_AND_SKILLS}, // Small and medium-sized enterprises development
	"24040": {exchangev1.Niche_NICHE_MICRO_FINANCE},          // Informal/semi-formal financial intermediaries
	"12110": {exchangev1.Niche_NICHE_HEALTH},                 // Health policy and administrative management
	"12191": {exchangev1.Niche_NICHE_HEALTH},                 // Medical services
	"12220": {exchangev1.Niche_NICHE_HEALTH},                 // Basic health care
	"12240": {exchangev1.Niche_NICHE_HEALTH},                 // Basic nutrition
	"12250": {exchangev1.Niche_NICHE_HEALTH},                 // Infectious disease control
	"12261": {exchangev1.Niche_NICHE_HEALTH},                 // Health education
	"13020": {exchangev1.Niche_NICHE_HEALTH},                 // Reproductive health care
	"13040": {exchangev1.Niche_NICHE_HEALTH},                 // STD control including HIV/AIDS
	"16064": {exchangev1.Niche_NICHE_HEALTH},                 // Social mitigation of HIV/AIDS
	"72011": {exchangev1.Niche_NICHE_HEALTH},                 // Basic health care services in emergencies
	"15130": {exchangev1.Niche_NICHE_LEGAL_AID},              // Legal and judicial development (incl. legal aid)
	"15136": {exchangev1.Niche_NICHE_MIGRATION},              // Immigration
	// Facilitation of orderly, safe, regular and responsible migration and
	// mobility: its DAC text covers migration policy and labour
	// recruitment, "preventing and combating trafficking in human
	// beings", and the voluntary return and sustainable reintegration of
	// migrants in their country of origin.
	"15190": {exchangev1.Niche_NICHE_MIGRATION, exchangev1.Niche_NICHE_RETURN_AND_REINTEGRATION, exchangev1.Niche_NICHE_PREVENTION},
	"15180": {exchangev1.Niche_NICHE_PREVENTION},        // Ending violence against women and girls (names trafficking of women and girls)
	"15261": {exchangev1.Niche_NICHE_CHILD_PROTECTION},  // Child soldiers (prevention and demobilisation)
	"16010": {exchangev1.Niche_NICHE_CHILD_PROTECTION},  // Social protection (programmes for orphans and children)
	"16015": {exchangev1.Niche_NICHE_CHILD_PROTECTION},  // Social services (incl youth development and women+ children): benefits to households with children
	"15150": {exchangev1.Niche_NICHE_ADVOCACY},          // Democratic participation and civil society
	"15160": {exchangev1.Niche_NICHE_ADVOCACY},          // Human rights
	"15170": {exchangev1.Niche_NICHE_ADVOCACY},          // Women's rights organisations and movements
	"16070": {exchangev1.Niche_NICHE_ADVOCACY},          // Labour rights (child labour, forced labour)
	"15196": {exchangev1.Niche_NICHE_RESEARCH_AND_DATA}, // Government and civil society statistics and data
	"16062": {exchangev1.Niche_NICHE_RESEARCH_AND_DATA}, // Statistical capacity building
	"72010": {exchangev1.Niche_NICHE_SHELTER},           // Material relief assistance and services (shelter)
	"72050": {exchangev1.Niche_NICHE_COORDINATION},      // Relief co-ordination and support services
}

// dacCategories maps DAC 3-digit sector categories to niches. Only the
// categories whose every code falls in one niche are mapped: not 112
// "Basic education", which also holds early childhood education (11240),
// school feeding (11250) and lower secondary education (11260).
var dacCategories = map[string][]exchangev1.Niche{
	"121": {exchangev1.Niche_NICHE_HEALTH}, // Health, general
	"122": {exchangev1.Niche_NICHE_HEALTH}, // Basic health
	"123": {exchangev1.Niche_NICHE_HEALTH}, // Non-communicable diseases
	"130": {exchangev1.Niche_NICHE_HEALTH}, // Population policies/programmes and reproductive health
}

// SectorNiches returns the niches a sector maps to, given its IATI sector
// vocabulary ("1" or empty for DAC 5-digit codes, "2" for 3-digit
// categories) and code; nil when it maps to none.
func SectorNiches(vocabulary, code string) []exchangev1.Niche {
	switch vocabulary {
	case "", "1":
		return dacSectors[code]
	case "2":
		return dacCategories[code]
	}
	return nil
}
