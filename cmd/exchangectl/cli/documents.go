package cli

import (
	"context"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/alltogether/exchange/client"
	"github.com/alltogether/exchange/pki"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// Flag names of the document enums.
var (
	documentKindNames = enumNames{"document kind", "DOCUMENT_KIND_", exchangev1.DocumentKind(0).Descriptor()}
	contentTypeNames  = enumNames{"content type", "DOCUMENT_CONTENT_TYPE_", exchangev1.DocumentContentType(0).Descriptor()}
)

const documentsLong = `Working tools the agencies share: manuals, guidelines, case studies and fact
sheets, as versioned files (PDF, DOCX, PNG or JPEG, at most 50 MiB each).

'documents upload' creates a document and uploads its first version, or with
--document uploads the next version of one of yours; the file is sent in
chunks with its SHA-256, which the exchange verifies. 'documents list' and
'documents search' show the documents shared with you (and your own);
'documents download' fetches a version and checks its checksum;
'documents versions' shows the versions and how often each was downloaded.

NAME is a document's name as 'documents list' shows it, AGENCY/ID, or in full
agencies/AGENCY/documents/ID.`

// newDocumentsCmd is `exchangectl documents`.
func newDocumentsCmd(a *app) *cobra.Command {
	cmd := newGroupCmd("documents", "Share working tools: versioned manuals, guidelines, case studies", documentsLong)
	cmd.Aliases = []string{"document", "docs"}
	cmd.AddCommand(
		newDocumentsUploadCmd(a, nil),
		newDocumentsListCmd(a, "list", nil),
		newDocumentsListCmd(a, "search", nil),
		newDocumentsVersionsCmd(a),
		newDocumentsDownloadCmd(a, nil),
	)
	return cmd
}

// documentName accepts "agencies/unicef/documents/ID" or "unicef/ID" and
// returns the full resource name.
func documentName(s string) (string, error) {
	rest := strings.TrimPrefix(strings.TrimSpace(s), "agencies/")
	agency, id, ok := strings.Cut(rest, "/")
	if ok {
		id = strings.TrimPrefix(id, "documents/")
	}
	if !ok || !pki.ValidAgencyID(agency) || !planIDPattern.MatchString(id) {
		return "", usageErrorf("invalid document name %q: want AGENCY/ID as 'documents list' shows it, or agencies/AGENCY/documents/ID", s)
	}
	return client.AgencyName(agency) + "/documents/" + id, nil
}

// shortDocumentName is "unicef/ID" for "agencies/unicef/documents/ID".
func shortDocumentName(name string) string {
	return strings.Replace(strings.TrimPrefix(name, "agencies/"), "/documents/", "/", 1)
}

// documentsListOptions are the inputs of `documents list` and `documents
// search`.
type documentsListOptions struct {
	app     *app
	Owner   string
	Niche   exchangev1.Niche
	Country string
	Kind    exchangev1.DocumentKind
}

// newDocumentsListCmd is `exchangectl documents list` (use "list") and
// `exchangectl documents search` (use "search"): the same listing, named
// for how it is used.
func newDocumentsListCmd(a *app, use string, runF func(*documentsListOptions) error) *cobra.Command {
	opts := &documentsListOptions{app: a}
	cmd := &cobra.Command{
		Use:   use + " [--owner AGENCY] [--niche N] [--country CC] [--kind K]",
		Short: "List the documents you may see, optionally by niche, country and kind",
		Long: "List the documents shared with you (and your own), by owner and then oldest\n" +
			"first, with their latest version.",
		Example: "  exchangectl documents " + use + " --niche prevention --country KH\n" +
			"  exchangectl documents " + use + " --kind case-study",
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := opts.request(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runDocumentsList(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Owner, "owner", "", "only documents of this agency id (default: every agency)")
	newEnumFlag(f, &opts.Niche, "niche", nicheNames, "only documents serving this niche")
	f.StringVar(&opts.Country, "country", "", "only documents written for this country, ISO 3166-1 such as KH")
	newEnumFlag(f, &opts.Kind, "kind", documentKindNames, "only documents of this kind")
	return cmd
}

// request returns the list request, or a usage error.
func (o *documentsListOptions) request() (*exchangev1.ListDocumentsRequest, error) {
	req := &exchangev1.ListDocumentsRequest{Parent: client.AllDocumentOwners, Niche: o.Niche, Kind: o.Kind}
	if o.Owner != "" {
		id, err := agencyID(o.Owner)
		if err != nil {
			return nil, err
		}
		req.Parent = client.AgencyName(id)
	}
	if o.Country != "" {
		c, err := countryCode(o.Country)
		if err != nil {
			return nil, err
		}
		req.Country = c
	}
	return req, nil
}

// documentRow is a document's row in a table.
func documentRow(d *exchangev1.Document) []string {
	return []string{
		shortDocumentName(d.GetName()),
		documentKindNames.name(protoreflect.EnumNumber(d.GetKind())),
		niches(d.GetNiches()),
		strings.Join(d.GetCountries(), ", "),
		strconv.Itoa(int(d.GetLatestVersion())),
		d.GetTitle(),
	}
}

// documentHeader is the header of documentRow tables.
var documentHeader = []string{"DOCUMENT", "KIND", "NICHES", "COUNTRIES", "VERSION", "TITLE"}

// runDocumentsList prints the matching documents.
func runDocumentsList(ctx context.Context, o *documentsListOptions) error {
	req, err := o.request()
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	docs, err := client.Collect(c.Documents.Documents(ctx, req))
	if err != nil {
		return err
	}
	return printList(o.app, docs, "documents", documentHeader, documentRow)
}

// newDocumentsVersionsCmd is `exchangectl documents versions`.
func newDocumentsVersionsCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "versions NAME",
		Short:   "List a document's versions and how often each was downloaded",
		Long:    "List a document's complete versions, oldest first, with their size, SHA-256\nand download count; the owner of a document uploaded with\n--record-downloaders also sees which agencies downloaded each version.",
		Example: "  exchangectl documents versions unicef/01jd8x4k2m9q7r3t5v6w8y0z1a",
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := documentName(args[0])
			if err != nil {
				return err
			}
			c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			vs, err := c.Documents.Versions(cmd.Context(), name)
			if err != nil {
				return err
			}
			return printList(a, vs, "versions", []string{"VERSION", "TYPE", "FILE", "BYTES", "SHA-256", "DOWNLOADS", "UPLOADED", "DOWNLOADED BY"},
				func(v *exchangev1.DocumentVersion) []string {
					return []string{
						strconv.Itoa(int(v.GetVersion())), contentTypeNames.name(protoreflect.EnumNumber(v.GetContentType())),
						v.GetFileName(), strconv.FormatInt(v.GetSizeBytes(), 10), v.GetSha256(),
						strconv.FormatInt(v.GetDownloadCount(), 10), formatTime(v.GetCreateTime()), orDash(strings.Join(v.GetDownloaders(), ", ")),
					}
				})
		},
	}
}
