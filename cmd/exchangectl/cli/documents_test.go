package cli

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

const testDocumentID = "01jd8x4k2m9q7r3t5v6w8y0z1a"

// TestDocumentsUploadFlags checks that 'documents upload' builds the new
// document the flags describe, and refuses before any call what cannot
// work, naming the flag.
func TestDocumentsUploadFlags(t *testing.T) {
	o, err := parse(t, newDocumentsUploadCmd, "manual.pdf", "--title", "Manual", "--kind", "case-study", "--niche", "prevention,rescue",
		"--country", "kh", "--share-group", "unwg", "--share-agency", "iom", "--record-downloaders")
	if err != nil {
		t.Fatal(err)
	}
	d, err := o.document()
	if err != nil {
		t.Fatal(err)
	}
	equalProto(t, d, &exchangev1.Document{
		Title: "Manual", Kind: exchangev1.DocumentKind_DOCUMENT_KIND_CASE_STUDY, RecordDownloaders: true,
		Niches:    []exchangev1.Niche{exchangev1.Niche_NICHE_PREVENTION, exchangev1.Niche_NICHE_RESCUE},
		Countries: []string{"KH"},
		Audience:  &exchangev1.Audience{Agencies: []string{"agencies/iom"}, WorkingGroups: []string{"workingGroups/unwg"}},
	})
	if o, err := parse(t, newDocumentsUploadCmd, "v2.pdf", "--document", "unicef/"+testDocumentID); err != nil || o.Document != "unicef/"+testDocumentID {
		t.Fatalf("--document: %v %v", o, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"m.pdf", "--kind", "manual"}, "--title and --kind"},
		{[]string{"m.pdf", "--title", "T"}, "--title and --kind"},
		{[]string{"m.pdf", "--document", "unicef/" + testDocumentID, "--title", "T"}, "--document uploads a new version"},
		{[]string{"m.pdf", "--document", "unicef/nope"}, "invalid document name"},
		{[]string{"m.pdf", "--title", "T", "--kind", "manual", "--share-all", "--share-agency", "iom"}, "--share-all"},
		{[]string{"m.pdf", "--title", "T", "--kind", "poster"}, "unknown document kind"},
	} {
		_, err := parse(t, newDocumentsUploadCmd, tc.args...)
		if !isUsage(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want a usage error about %s", tc.args, err, tc.want)
		}
	}
}

// TestDocumentsNamesAndSearchFlags checks the document name forms and the
// search request the flags make.
func TestDocumentsNamesAndSearchFlags(t *testing.T) {
	for _, s := range []string{"unicef/" + testDocumentID, "agencies/unicef/documents/" + testDocumentID, "unicef/documents/" + testDocumentID} {
		if n, err := documentName(s); err != nil || n != "agencies/unicef/documents/"+testDocumentID {
			t.Errorf("%s: %s %v", s, n, err)
		}
	}
	if _, err := parse(t, newDocumentsDownloadCmd, "unicef", "-o", "x.pdf"); !isUsage(err) {
		t.Errorf("download of a bad name: %v", err)
	}
	search := func(a *app, run func(*documentsListOptions) error) *cobra.Command {
		return newDocumentsListCmd(a, "search", run)
	}
	o, err := parse(t, search, "--niche", "prevention", "--country", "th", "--kind", "fact-sheet", "--owner", "ilo")
	if err != nil {
		t.Fatal(err)
	}
	req, err := o.request()
	if err != nil {
		t.Fatal(err)
	}
	equalProto(t, req, &exchangev1.ListDocumentsRequest{Parent: "agencies/ilo", Niche: exchangev1.Niche_NICHE_PREVENTION, Country: "TH",
		Kind: exchangev1.DocumentKind_DOCUMENT_KIND_FACT_SHEET})
	if _, err := parse(t, search, "--country", "Thailand"); !isUsage(err) {
		t.Errorf("a bad country: %v", err)
	}
}
