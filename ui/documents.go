package ui

import (
	"cmp"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/alltogether/exchange/client"
)

// documentRow is one document the caller may see, with its versions.
type documentRow struct {
	// ID is "agency/id", as exchangectl names a document.
	ID, Owner, Title, Description, Kind, Niches, Countries, Audience string
	Versions                                                         []documentVersionRow
	// Downloads is the sum of the versions' download counts.
	Downloads int64
}

// documentVersionRow is one complete version of a document.
type documentVersionRow struct {
	Version       int32
	FileName      string
	Type, Size    string
	Downloads     int64
	Uploaded, SHA string
}

// documents serves the documents the caller may see, by kind, with each
// version's download count.
func (d *Dashboard) documents(w http.ResponseWriter, r *http.Request) {
	p := d.newPage("Documents", "documents")
	ctx, cancel := callContext(r)
	defer cancel()
	var rows []documentRow
	fail := func(err error) {
		code, msg := httpStatus(err)
		p.Error = msg
		d.render(w, code, "documents", p)
	}
	list, err := client.Collect(d.cfg.Client.Documents.Documents(ctx, nil))
	if err != nil {
		fail(err)
		return
	}
	for _, doc := range list {
		row := documentRow{
			ID: strings.Replace(strings.TrimPrefix(doc.GetName(), "agencies/"), "/documents/", "/", 1), Owner: client.ResourceID(doc.GetOwner()),
			Title: doc.GetTitle(), Description: doc.GetDescription(), Kind: enumText(doc.GetKind(), "DOCUMENT_KIND_"),
			Niches: nicheList(doc.GetNiches()), Countries: strings.Join(doc.GetCountries(), ", "), Audience: audienceText(doc.GetAudience()),
		}
		versions, err := d.cfg.Client.Documents.Versions(ctx, doc.GetName())
		if err != nil {
			fail(err)
			return
		}
		for _, v := range versions {
			row.Versions = append(row.Versions, documentVersionRow{
				Version: v.GetVersion(), FileName: v.GetFileName(), Type: enumText(v.GetContentType(), "DOCUMENT_CONTENT_TYPE_"),
				Size: sizeText(v.GetSizeBytes()), Downloads: v.GetDownloadCount(), Uploaded: timeText(v.GetCreateTime()), SHA: v.GetSha256(),
			})
			row.Downloads += v.GetDownloadCount()
		}
		slices.Reverse(row.Versions) // newest first
		rows = append(rows, row)
	}
	slices.SortStableFunc(rows, func(a, b documentRow) int { return cmp.Compare(a.Kind, b.Kind) })
	p.Data = rows
	d.render(w, http.StatusOK, "documents", p)
}

// sizeText is a file size in bytes, KiB or MiB.
func sizeText(n int64) string {
	switch {
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
	case n >= 1<<10:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 1, 64) + " KiB"
	default:
		return strconv.FormatInt(n, 10) + " bytes"
	}
}
