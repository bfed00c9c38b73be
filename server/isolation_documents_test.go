package server

import (
	"fmt"
	"slices"
	"strings"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// The isolation matrix for DocumentService, kept in a file of its own so
// that services added side by side do not edit the same lines: the kinds
// of its methods, and its entries, which seed documents of several owners
// and audiences and judge every method on each as every caller.

func init() {
	for m, k := range map[string]methodKind{
		// Documents are owned by agencies; reads and downloads admit the
		// secretariat, which sees only what is shared with all members.
		"DocumentService/CreateDocument":          forAgencies,
		"DocumentService/GetDocument":             forEveryone,
		"DocumentService/ListDocuments":           forEveryone,
		"DocumentService/UploadDocumentVersion":   forAgencies,
		"DocumentService/ListDocumentVersions":    forEveryone,
		"DocumentService/DownloadDocumentVersion": forEveryone,
	} {
		modelMethodKinds[m] = k
	}
}

// mDocument is a document of the isolation world.
type mDocument struct {
	name, owner string
	audience    mAudience
	versions    int
}

// documentEntries seeds documents and returns the matrix entries of
// DocumentService.
func (w *isoWorld) documentEntries() []mxEntry {
	var docs []*mDocument
	seed := []struct {
		owner    string
		audience mAudience
	}{
		{"agencies/ilo", mAudience{}},
		{"agencies/ilo", mAudience{all: true}},
		{"agencies/unicef", mAudience{agencies: []string{"agencies/iom"}}},
		{"agencies/unicef", mAudience{groups: []string{isoUNWG}}},
		{"agencies/ngo-kh", mAudience{groups: []string{isoNGONet}}},
	}
	file := []byte("%PDF-1.7\nisolation\n")
	for i, s := range seed {
		c := w.conn(s.owner)
		resp, err := c.documents().CreateDocument(bg(), &exchangev1.CreateDocumentRequest{Parent: s.owner, RequestId: nextRequestID(),
			Document: &exchangev1.Document{Title: fmt.Sprint("Tool ", i), Kind: exchangev1.DocumentKind_DOCUMENT_KIND_GUIDELINE, Audience: s.audience.proto()}})
		w.must(err, "seed document")
		name := resp.GetDocument().GetName()
		_, err = upload(c, pdfMeta(name, file), file, 8)
		w.must(err, "seed document version")
		docs = append(docs, &mDocument{name: name, owner: s.owner, audience: s.audience, versions: 1})
	}
	w.record()
	sees := func(c string, d *mDocument) bool { return w.m.audienceSees(c, d.owner, d.audience) }
	read := func(d *mDocument) func(string) verdict {
		return func(c string) verdict {
			if !sees(c, d) {
				return vInvisible
			}
			return vAllow
		}
	}
	// perDocument makes one attempt per seeded document (those with a
	// version, so that a download is judged on visibility alone).
	perDocument := func(want func(d *mDocument) func(string) verdict, call func(c as, name string) (any, error),
		check func(d *mDocument) func(string, any) []finding, apply func(d *mDocument) func(string, any)) []mxAttempt {
		var out []mxAttempt
		for _, d := range docs {
			if d.versions == 0 {
				continue
			}
			a := mxAttempt{label: fmt.Sprintf("%s (%v)", d.name, d.audience), owners: []string{d.owner}, name: d.name, twin: twinOf(d.name),
				want: want(d), call: call}
			if check != nil {
				a.check = check(d)
			}
			if apply != nil {
				a.apply = apply(d)
			}
			out = append(out, a)
		}
		return out
	}
	docsOf := func(caller, owner string) []string {
		var out []string
		for _, d := range docs {
			if (owner == "" || d.owner == owner) && sees(caller, d) {
				out = append(out, d.name)
			}
		}
		return out
	}
	return []mxEntry{
		{exchangev1.DocumentService_GetDocument_FullMethodName, func() []mxAttempt {
			return perDocument(read, func(c as, n string) (any, error) {
				return c.documents().GetDocument(bg(), &exchangev1.GetDocumentRequest{Name: n})
			}, func(d *mDocument) func(string, any) []finding {
				return func(_ string, resp any) []finding {
					if got := resp.(*exchangev1.GetDocumentResponse).GetDocument(); got.GetName() != d.name || got.GetOwner() != d.owner {
						return []finding{wrongf("got %s of %s", got.GetName(), got.GetOwner())}
					}
					return nil
				}
			}, nil)
		}},
		{exchangev1.DocumentService_ListDocuments_FullMethodName, func() []mxAttempt {
			var out []mxAttempt
			for _, parent := range append([]string{"agencies/-"}, append(slices.Clone(isoActive), isoSuspended)...) {
				owner := strings.TrimSuffix(parent, "-")
				if owner == "agencies/" {
					owner = ""
				}
				out = append(out, mxAttempt{label: parent, want: allow, call: func(c as, _ string) (any, error) {
					return listAll(func(tok string) ([]*exchangev1.Document, string, error) {
						r, err := c.documents().ListDocuments(bg(), &exchangev1.ListDocumentsRequest{Parent: parent, PageSize: 1000, PageToken: tok})
						return r.GetDocuments(), r.GetNextPageToken(), err
					})
				}, check: func(caller string, resp any) []finding {
					var names []string
					for _, d := range resp.([]*exchangev1.Document) {
						names = append(names, d.GetName())
					}
					if d := diffSets(names, docsOf(caller, owner)); d != "" {
						return []finding{leakf("%s", d)}
					}
					return nil
				}})
			}
			return out
		}},
		{exchangev1.DocumentService_ListDocumentVersions_FullMethodName, func() []mxAttempt {
			return perDocument(read, func(c as, n string) (any, error) {
				return c.documents().ListDocumentVersions(bg(), &exchangev1.ListDocumentVersionsRequest{Name: n})
			}, func(d *mDocument) func(string, any) []finding {
				return func(_ string, resp any) []finding {
					if n := len(resp.(*exchangev1.ListDocumentVersionsResponse).GetVersions()); n != d.versions {
						return []finding{wrongf("%d versions, model %d", n, d.versions)}
					}
					return nil
				}
			}, nil)
		}},
		{exchangev1.DocumentService_DownloadDocumentVersion_FullMethodName, func() []mxAttempt {
			return perDocument(read, func(c as, n string) (any, error) {
				_, data, _, err := download(c, n, 0)
				return data, err
			}, func(d *mDocument) func(string, any) []finding {
				return func(_ string, resp any) []finding {
					if got := resp.([]byte); string(got) != string(file) {
						return []finding{wrongf("downloaded %q", got)}
					}
					return nil
				}
			}, nil)
		}},
		{exchangev1.DocumentService_UploadDocumentVersion_FullMethodName, func() []mxAttempt {
			return perDocument(func(d *mDocument) func(string) verdict {
				return func(c string) verdict {
					switch {
					case !sees(c, d):
						return vInvisible
					case callerAgency(c) != d.owner:
						return vDenied
					}
					return vAllow
				}
			}, func(c as, n string) (any, error) {
				return upload(c, pdfMeta(n, file), file, 8)
			}, nil, func(d *mDocument) func(string, any) {
				return func(string, any) { d.versions++ }
			})
		}},
		{exchangev1.DocumentService_CreateDocument_FullMethodName, func() []mxAttempt {
			var out []mxAttempt
			for _, ownParent := range []bool{true, false} {
				parent := func(caller string) string {
					if ownParent {
						return caller
					}
					return otherAgency(caller, "")
				}
				out = append(out, mxAttempt{label: fmt.Sprint("own parent ", ownParent), want: func(c string) verdict { return w.m.ownParent(c, parent(c)) },
					call: func(c as, _ string) (any, error) {
						body := &exchangev1.Document{Title: "Created", Kind: exchangev1.DocumentKind_DOCUMENT_KIND_FACT_SHEET, Owner: "agencies/iom"}
						return c.documents().CreateDocument(bg(), &exchangev1.CreateDocumentRequest{Parent: parent(callerOf(c)), Document: body, RequestId: nextRequestID()})
					}, check: func(caller string, resp any) []finding {
						if o := resp.(*exchangev1.CreateDocumentResponse).GetDocument().GetOwner(); o != caller {
							return []finding{leakf("stored with owner %s", o)}
						}
						return nil
					}, apply: func(caller string, resp any) {
						docs = append(docs, &mDocument{name: resp.(*exchangev1.CreateDocumentResponse).GetDocument().GetName(), owner: caller})
					}})
			}
			return out
		}},
	}
}
