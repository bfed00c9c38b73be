package cli

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// documentsUploadOptions are the inputs of `documents upload`.
type documentsUploadOptions struct {
	app         *app
	File        string
	Document    string
	Type        exchangev1.DocumentContentType
	Title       string
	Description string
	Kind        exchangev1.DocumentKind
	Niches      []exchangev1.Niche
	Countries   []string
	ShareAll    bool
	Agencies    []string
	Groups      []string
	Record      bool
}

// newDocumentsUploadCmd is `exchangectl documents upload`.
func newDocumentsUploadCmd(a *app, runF func(*documentsUploadOptions) error) *cobra.Command {
	opts := &documentsUploadOptions{app: a}
	cmd := &cobra.Command{
		Use:   "upload FILE (--document NAME | --title T --kind K [--niche N] [--country CC] [--share-all | --share-agency A --share-group G])",
		Short: "Upload a new document, or the next version of one of yours",
		Long: "Upload FILE (PDF, DOCX, PNG or JPEG, at most 50 MiB) as the first version of a\n" +
			"new document described by the flags, or with --document as the next version\n" +
			"of one of your documents. The file is sent in chunks of 1 MiB with its\n" +
			"SHA-256; the exchange checks its type by its first bytes, its size and the\n" +
			"checksum, and stores nothing if any is wrong. The type comes from the file's\n" +
			"extension unless --type says it. The new document is yours alone unless\n" +
			"shared with --share-all, --share-agency or --share-group.",
		Example: "  exchangectl documents upload manual.pdf --title 'Case management manual' --kind manual \\\n" +
			"      --niche prevention --country KH --share-group unwg\n" +
			"  exchangectl documents upload manual-v2.pdf --document unicef/01jd8x4k2m9q7r3t5v6w8y0z1a",
		Args: exactArgs("FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.File = args[0]
			if _, err := opts.document(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runDocumentsUpload(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Document, "document", "", "upload the next version of this document of yours (AGENCY/ID)")
	newEnumFlag(f, &opts.Type, "type", contentTypeNames, "the file's type (default: from its extension)")
	f.StringVar(&opts.Title, "title", "", "a new document's title")
	f.StringVar(&opts.Description, "description", "", "what a new document covers and for whom")
	newEnumFlag(f, &opts.Kind, "kind", documentKindNames, "a new document's kind")
	newEnumSliceFlag(f, &opts.Niches, "niche", nicheNames, "a niche a new document serves")
	f.StringSliceVar(&opts.Countries, "country", nil, "a country a new document is written for, ISO 3166-1 such as KH")
	f.BoolVar(&opts.ShareAll, "share-all", false, "share a new document with every member agency")
	f.StringSliceVar(&opts.Agencies, "share-agency", nil, "share a new document with this agency id")
	f.StringSliceVar(&opts.Groups, "share-group", nil, "share a new document with the members and observers of this working group id")
	f.BoolVar(&opts.Record, "record-downloaders", false, "record which agencies download a new document's versions, for you alone to see (readers are told); by default only counts are kept")
	return cmd
}

// document returns the new document the flags describe, nil with
// --document, or a usage error.
func (o *documentsUploadOptions) document() (*exchangev1.Document, error) {
	if o.Document != "" {
		if o.Title != "" || o.Kind != 0 || len(o.Niches) > 0 || len(o.Countries) > 0 || o.ShareAll || len(o.Agencies) > 0 || len(o.Groups) > 0 || o.Record {
			return nil, usageErrorf("--document uploads a new version of a document as it is: the flags that describe a new document do not go with it")
		}
		_, err := documentName(o.Document)
		return nil, err
	}
	if o.Title == "" || o.Kind == 0 {
		return nil, usageErrorf("a new document needs --title and --kind (%s); or name an existing one with --document", documentKindNames.values())
	}
	if o.ShareAll && (len(o.Agencies) > 0 || len(o.Groups) > 0) {
		return nil, usageErrorf("--share-all shares with every member: it excludes --share-agency and --share-group")
	}
	countries, err := countryCodes(o.Countries)
	if err != nil {
		return nil, err
	}
	d := &exchangev1.Document{Title: o.Title, Description: o.Description, Kind: o.Kind, Niches: o.Niches, Countries: countries, RecordDownloaders: o.Record}
	if o.ShareAll || len(o.Agencies) > 0 || len(o.Groups) > 0 {
		d.Audience = &exchangev1.Audience{AllMembers: o.ShareAll}
		if d.Audience.Agencies, err = agencyNames(o.Agencies); err != nil {
			return nil, err
		}
		for _, g := range o.Groups {
			d.Audience.WorkingGroups = append(d.Audience.WorkingGroups, "workingGroups/"+g)
		}
	}
	return d, nil
}

// runDocumentsUpload creates the document if asked and uploads the file.
func runDocumentsUpload(ctx context.Context, o *documentsUploadOptions) error {
	d, err := o.document()
	if err != nil {
		return err
	}
	contentType := o.Type
	if contentType == 0 {
		t, ok := client.ContentTypeOf(o.File)
		if !ok {
			return usageErrorf("%s: cannot tell the type from the extension; give --type (%s)", o.File, contentTypeNames.values())
		}
		contentType = t
	}
	file, err := os.Open(o.app.path(o.File))
	if err != nil {
		return err
	}
	defer file.Close()
	if info, err := file.Stat(); err == nil && info.Size() > client.MaxDocumentBytes {
		return usageErrorf("%s has %d bytes: a document version holds at most %d (50 MiB)", o.File, info.Size(), client.MaxDocumentBytes)
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	name := ""
	if d == nil {
		name, _ = documentName(o.Document)
	} else {
		owner, err := o.app.ownAgency("documents belong to agencies; pass an agency's --cert and --key")
		if err != nil {
			return err
		}
		created, err := c.Documents.Create(ctx, owner, d)
		if err != nil {
			return err
		}
		name = created.GetName()
	}
	v, err := c.Documents.Upload(ctx, name, contentType, o.File, file)
	if err != nil {
		return fmt.Errorf("%s: %w", shortDocumentName(name), err)
	}
	return printOne(o.app, v, documentVersionDetail)
}

// documentVersionDetail is a version's fields.
func documentVersionDetail(v *exchangev1.DocumentVersion) []field {
	return []field{
		{"Version", v.GetName()},
		{"File", v.GetFileName()},
		{"Type", contentTypeNames.name(protoreflect.EnumNumber(v.GetContentType()))},
		{"Bytes", fmt.Sprint(v.GetSizeBytes())},
		{"SHA-256", v.GetSha256()},
		{"Downloads", fmt.Sprint(v.GetDownloadCount())},
		{"Downloaded by", strings.Join(v.GetDownloaders(), ", ")},
		{"Uploaded", formatTime(v.GetCreateTime())},
	}
}
