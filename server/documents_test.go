package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// documents is a DocumentService connection as one identity.
func (c as) documents() exchangev1.DocumentServiceClient {
	return exchangev1.NewDocumentServiceClient(c.conn)
}

// pdfBytes is n bytes of a PDF-looking file: the PDF magic, then random
// bytes (so that a chunk sent twice or out of order changes the checksum).
func pdfBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	copy(b, "%PDF-1.7\n")
	return b
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// upload sends meta and then data in chunks of chunkSize, and returns the
// server's answer.
func upload(c as, meta *exchangev1.UploadDocumentVersionMetadata, data []byte, chunkSize int) (*exchangev1.DocumentVersion, error) {
	stream, err := c.documents().UploadDocumentVersion(context.Background())
	if err != nil {
		return nil, err
	}
	send := func(m *exchangev1.UploadDocumentVersionRequest) error {
		if err := stream.Send(m); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		return nil
	}
	if err := send(&exchangev1.UploadDocumentVersionRequest{Data: &exchangev1.UploadDocumentVersionRequest_Metadata{Metadata: meta}}); err != nil {
		return nil, err
	}
	for len(data) > 0 {
		n := min(chunkSize, len(data))
		if err := send(&exchangev1.UploadDocumentVersionRequest{Data: &exchangev1.UploadDocumentVersionRequest_Chunk{Chunk: data[:n]}}); err != nil {
			return nil, err
		}
		data = data[n:]
	}
	resp, err := stream.CloseAndRecv()
	return resp.GetVersion(), err
}

// download fetches a version and returns its metadata and file.
func download(c as, name string, version int32) (*exchangev1.DocumentVersion, []byte, int, error) {
	stream, err := c.documents().DownloadDocumentVersion(context.Background(), &exchangev1.DownloadDocumentVersionRequest{Name: name, Version: version})
	if err != nil {
		return nil, nil, 0, err
	}
	var v *exchangev1.DocumentVersion
	var data []byte
	messages := 0
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return v, data, messages, nil
		}
		if err != nil {
			return nil, nil, 0, err
		}
		messages++
		if m.GetVersion() != nil {
			v = m.GetVersion()
		}
		data = append(data, m.GetChunk()...)
	}
}

func pdfMeta(doc string, data []byte) *exchangev1.UploadDocumentVersionMetadata {
	return &exchangev1.UploadDocumentVersionMetadata{
		Document: doc, ContentType: exchangev1.DocumentContentType_DOCUMENT_CONTENT_TYPE_PDF,
		FileName: "manual.pdf", SizeBytes: int64(len(data)), Sha256: sha256Hex(data),
	}
}

// documentParties is planParties with a manual owned by unicef, shared
// with the working group un-wg (ilo a member, iom an observer).
func documentParties(t *testing.T) (x *exchange, sec, ilo, iom, unicef, ngo as, doc *exchangev1.Document) {
	t.Helper()
	x, sec, ilo, iom, unicef, ngo = planParties(t)
	resp, err := unicef.documents().CreateDocument(context.Background(), &exchangev1.CreateDocumentRequest{
		Parent: unicef.agencyName(), RequestId: nextRequestID(),
		Document: &exchangev1.Document{
			Title: "Case management manual", Kind: exchangev1.DocumentKind_DOCUMENT_KIND_MANUAL,
			Niches: []exchangev1.Niche{exchangev1.Niche_NICHE_PREVENTION}, Countries: []string{"KH"},
			Audience: &exchangev1.Audience{WorkingGroups: []string{"workingGroups/un-wg"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return x, sec, ilo, iom, unicef, ngo, resp.GetDocument()
}

// TestDocumentUploadedInChunksIsDownloadedIntact uploads a 2.5 MiB file in
// chunks that do not line up with the stored ones, and checks that members
// and observers of the audience download it byte for byte, in several
// messages, with its checksum, and that each full download is counted.
func TestDocumentUploadedInChunksIsDownloadedIntact(t *testing.T) {
	x, _, ilo, iom, unicef, _, doc := documentParties(t)
	data := pdfBytes(t, 5<<19+12345)
	v, err := upload(unicef, pdfMeta(doc.GetName(), data), data, 700<<10)
	if err != nil {
		t.Fatal(err)
	}
	if v.GetVersion() != 1 || v.GetSizeBytes() != int64(len(data)) || v.GetSha256() != sha256Hex(data) {
		t.Fatalf("version %v", v)
	}
	chunks, uploads, err := x.store.DocumentStorage(context.Background(), doc.GetName())
	if err != nil || chunks != 3 || uploads != 0 {
		t.Fatalf("stored %d chunks, %d uploads, %v; want 3 chunks of at most 1 MiB", chunks, uploads, err)
	}
	for _, c := range []as{unicef, ilo, iom} {
		got, file, messages, err := download(c, doc.GetName(), 0)
		if err != nil {
			t.Fatalf("%s: %v", c.agencyID, err)
		}
		if !bytes.Equal(file, data) || sha256Hex(file) != got.GetSha256() {
			t.Fatalf("%s downloaded %d bytes that differ from the %d uploaded", c.agencyID, len(file), len(data))
		}
		if messages != 4 { // the metadata and three chunks
			t.Errorf("%s: %d messages", c.agencyID, messages)
		}
	}
	// A second version leaves the first as it was.
	data2 := pdfBytes(t, 1000)
	if v2, err := upload(unicef, pdfMeta(doc.GetName(), data2), data2, 300); err != nil || v2.GetVersion() != 2 {
		t.Fatalf("version 2: %v %v", v2, err)
	}
	if _, file, _, err := download(ilo, doc.GetName(), 1); err != nil || !bytes.Equal(file, data) {
		t.Fatalf("version 1 after version 2: %d bytes, %v", len(file), err)
	}
	resp, err := iom.documents().ListDocumentVersions(context.Background(), &exchangev1.ListDocumentVersionsRequest{Name: doc.GetName()})
	if err != nil {
		t.Fatal(err)
	}
	if vs := resp.GetVersions(); len(vs) != 2 || vs[0].GetDownloadCount() != 4 || vs[1].GetDownloadCount() != 0 {
		t.Fatalf("versions %v", vs)
	}
	// Counted, not who: no audit entry about the version names a reader.
	entries, err := x.store.AuditEntries(context.Background(), 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	counted := 0
	for _, e := range entries {
		if strings.HasPrefix(e.GetResourceName(), doc.GetName()+"/versions/") && e.GetMethod() == exchangev1.DocumentService_DownloadDocumentVersion_FullMethodName {
			counted++
			if e.GetActor() != "exchange" || e.GetActorCertificate() != "" {
				t.Errorf("the audit entry of a download names %s (certificate %q)", e.GetActor(), e.GetActorCertificate())
			}
		}
	}
	if counted != 4 {
		t.Errorf("%d audit entries of downloads, want 4", counted)
	}
}

// TestDocumentAudienceIsEnforced checks that an agency outside the
// audience, and the secretariat, get the same NOT_FOUND for the document
// as for one that does not exist, on every read, and cannot find it in a
// search; and that only the owner uploads.
func TestDocumentAudienceIsEnforced(t *testing.T) {
	_, sec, ilo, iom, unicef, ngo, doc := documentParties(t)
	data := pdfBytes(t, 5000)
	if _, err := upload(unicef, pdfMeta(doc.GetName(), data), data, 1024); err != nil {
		t.Fatal(err)
	}
	missing := doc.GetName()[:len(doc.GetName())-1] + "z"
	if missing == doc.GetName() {
		missing = doc.GetName()[:len(doc.GetName())-1] + "y"
	}
	ctx := context.Background()
	for _, c := range []as{ngo, sec} {
		for _, name := range []string{doc.GetName(), missing} {
			_, err := c.documents().GetDocument(ctx, &exchangev1.GetDocumentRequest{Name: name})
			st := wantCode(t, err, codes.NotFound)
			if st.Message() != name+" not found" {
				t.Errorf("get %s: %q", name, st.Message())
			}
			_, _, _, err = download(c, name, 0)
			if st := wantCode(t, err, codes.NotFound); st.Message() != name+" not found" {
				t.Errorf("download %s: %q", name, st.Message())
			}
			_, err = c.documents().ListDocumentVersions(ctx, &exchangev1.ListDocumentVersionsRequest{Name: name})
			if st := wantCode(t, err, codes.NotFound); st.Message() != name+" not found" {
				t.Errorf("versions %s: %q", name, st.Message())
			}
		}
		resp, err := c.documents().ListDocuments(ctx, &exchangev1.ListDocumentsRequest{Parent: "agencies/-"})
		if err != nil || len(resp.GetDocuments()) != 0 {
			t.Errorf("%s lists %v, %v", c.agencyID, resp.GetDocuments(), err)
		}
	}
	for _, c := range []as{ilo, iom} {
		resp, err := c.documents().ListDocuments(ctx, &exchangev1.ListDocumentsRequest{Parent: "agencies/-"})
		if err != nil || len(resp.GetDocuments()) != 1 {
			t.Errorf("%s lists %v, %v", c.agencyID, resp.GetDocuments(), err)
		}
	}
	// ilo sees the document but does not own it: it may not upload.
	_, err := upload(ilo, pdfMeta(doc.GetName(), data), data, 1024)
	wantCode(t, err, codes.PermissionDenied)
	// ngo does not see it: the same NOT_FOUND as a missing document.
	_, err = upload(ngo, pdfMeta(doc.GetName(), data), data, 1024)
	wantCode(t, err, codes.NotFound)
}

// TestRefusedDocumentUploadStoresNothing sends uploads that must be
// refused (a wrong checksum, a file shorter or longer than declared, a
// file that is not what its type says, a size over the limit) and checks
// each error names the field, and that nothing of them stays stored.
func TestRefusedDocumentUploadStoresNothing(t *testing.T) {
	x, _, _, _, unicef, _, doc := documentParties(t)
	data := pdfBytes(t, 3<<20+77) // more than one stored chunk is written before the end
	cases := []struct {
		what  string
		meta  func(*exchangev1.UploadDocumentVersionMetadata)
		data  []byte
		code  codes.Code
		field string
	}{
		{"wrong checksum", func(m *exchangev1.UploadDocumentVersionMetadata) { m.Sha256 = sha256Hex([]byte("other")) }, data, codes.InvalidArgument, "metadata.sha256"},
		{"shorter than declared", func(m *exchangev1.UploadDocumentVersionMetadata) { m.SizeBytes++ }, data, codes.InvalidArgument, "metadata.size_bytes"},
		{"longer than declared", func(m *exchangev1.UploadDocumentVersionMetadata) { m.SizeBytes-- }, data, codes.InvalidArgument, "metadata.size_bytes"},
		{"a PNG declared as PDF", nil, append([]byte("\x89PNG\r\n\x1a\n"), data[8:]...), codes.InvalidArgument, "metadata.content_type"},
		{"a PDF declared as DOCX", func(m *exchangev1.UploadDocumentVersionMetadata) {
			m.ContentType = exchangev1.DocumentContentType_DOCUMENT_CONTENT_TYPE_DOCX
		}, data, codes.InvalidArgument, "metadata.content_type"},
		{"over 50 MiB", func(m *exchangev1.UploadDocumentVersionMetadata) { m.SizeBytes = MaxDocumentVersionBytes + 1 }, data, codes.ResourceExhausted, "metadata.size_bytes"},
	}
	for _, tc := range cases {
		meta := pdfMeta(doc.GetName(), tc.data)
		if tc.meta != nil {
			tc.meta(meta)
		}
		_, err := upload(unicef, meta, tc.data, 1<<20)
		st := wantCode(t, err, tc.code)
		if f := violatedFields(st); len(f) != 1 || f[0] != tc.field {
			t.Errorf("%s: fields %v, want %s (%s)", tc.what, f, tc.field, st.Message())
		}
		if tc.code == codes.ResourceExhausted && !strings.Contains(st.Message(), "52428800 bytes (50 MiB)") {
			t.Errorf("%s: %q does not state the limit", tc.what, st.Message())
		}
		chunks, uploads, err := x.store.DocumentStorage(context.Background(), doc.GetName())
		if err != nil || chunks != 0 || uploads != 0 {
			t.Fatalf("%s left %d chunks and %d uploads (%v)", tc.what, chunks, uploads, err)
		}
		d, err := unicef.documents().GetDocument(context.Background(), &exchangev1.GetDocumentRequest{Name: doc.GetName()})
		if err != nil || d.GetDocument().GetLatestVersion() != 0 {
			t.Fatalf("%s: document %v %v", tc.what, d.GetDocument(), err)
		}
	}
	// After every refusal, a good upload takes version 1.
	if v, err := upload(unicef, pdfMeta(doc.GetName(), data), data, 1<<20); err != nil || v.GetVersion() != 1 {
		t.Fatalf("good upload: %v %v", v, err)
	}
	// A DOCX is a ZIP container: it starts with a local file header.
	docx := append([]byte("PK\x03\x04"), data[4:5000]...)
	meta := pdfMeta(doc.GetName(), docx)
	meta.ContentType, meta.FileName = exchangev1.DocumentContentType_DOCUMENT_CONTENT_TYPE_DOCX, "manual.docx"
	if v, err := upload(unicef, meta, docx, 1<<20); err != nil || v.GetVersion() != 2 {
		t.Fatalf("docx upload: %v %v", v, err)
	}
}

// TestDocumentSearch finds documents by niche, country and kind.
func TestDocumentSearch(t *testing.T) {
	_, _, ilo, _, unicef, _, manual := documentParties(t)
	resp, err := ilo.documents().CreateDocument(context.Background(), &exchangev1.CreateDocumentRequest{
		Parent: ilo.agencyName(),
		Document: &exchangev1.Document{
			Title: "Fact sheet: labour trafficking", Kind: exchangev1.DocumentKind_DOCUMENT_KIND_FACT_SHEET,
			Niches: []exchangev1.Niche{exchangev1.Niche_NICHE_LEGAL_AID}, Countries: []string{"TH"},
			Audience: &exchangev1.Audience{AllMembers: true},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	sheet := resp.GetDocument()
	search := func(req *exchangev1.ListDocumentsRequest) []string {
		req.Parent = "agencies/-"
		resp, err := unicef.documents().ListDocuments(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, d := range resp.GetDocuments() {
			out = append(out, d.GetName())
		}
		return out
	}
	for _, tc := range []struct {
		req  *exchangev1.ListDocumentsRequest
		want []string
	}{
		{&exchangev1.ListDocumentsRequest{}, []string{sheet.GetName(), manual.GetName()}},
		{&exchangev1.ListDocumentsRequest{Niche: exchangev1.Niche_NICHE_PREVENTION}, []string{manual.GetName()}},
		{&exchangev1.ListDocumentsRequest{Country: "TH"}, []string{sheet.GetName()}},
		{&exchangev1.ListDocumentsRequest{Kind: exchangev1.DocumentKind_DOCUMENT_KIND_MANUAL}, []string{manual.GetName()}},
		{&exchangev1.ListDocumentsRequest{Kind: exchangev1.DocumentKind_DOCUMENT_KIND_GUIDELINE}, nil},
	} {
		if got := search(tc.req); strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("search %v: %v, want %v", tc.req, got, tc.want)
		}
	}
}

// TestUploadAbandonedByAStoppedServerIsCleanedUpAtStart leaves an upload
// half-way, as a server that stopped mid-upload would, and checks that a
// server started after the upload timeout deletes its chunks, and that one
// started before it leaves a possibly running upload alone.
func TestUploadAbandonedByAStoppedServerIsCleanedUpAtStart(t *testing.T) {
	x, _, _, _, _, _, doc := documentParties(t)
	ctx := context.Background()
	op := store.Op{Actor: "agencies/unicef", Method: exchangev1.DocumentService_UploadDocumentVersion_FullMethodName}
	version, err := x.store.BeginDocumentUpload(ctx, op, doc.GetName(), time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := x.store.PutDocumentChunk(ctx, op, doc.GetName(), version, uint32(i), []byte("%PDF-")); err != nil {
			t.Fatal(err)
		}
	}
	x.stop()
	x.serveWith(func(c *Config) { c.Now = func() time.Time { return time.Now().Add(documentUploadTimeout / 2) } })
	if chunks, uploads, err := x.store.DocumentStorage(ctx, doc.GetName()); err != nil || chunks != 3 || uploads != 1 {
		t.Fatalf("an upload within its timeout: %d chunks, %d uploads, %v", chunks, uploads, err)
	}
	x.stop()
	x.serveWith(func(c *Config) {
		c.Now = func() time.Time { return time.Now().Add(documentUploadTimeout + time.Minute) }
	})
	if chunks, uploads, err := x.store.DocumentStorage(ctx, doc.GetName()); err != nil || chunks != 0 || uploads != 0 {
		t.Fatalf("an abandoned upload after a restart: %d chunks, %d uploads, %v", chunks, uploads, err)
	}
}

// TestDocumentAtTheSizeLimitIsAccepted uploads a version of exactly 50
// MiB, the limit, and downloads it intact; one byte more is refused (see
// TestRefusedDocumentUploadStoresNothing). The times are printed, not
// judged.
func TestDocumentAtTheSizeLimitIsAccepted(t *testing.T) {
	if testing.Short() {
		t.Skip("uploads 50 MiB")
	}
	x, _, ilo, _, unicef, _, doc := documentParties(t)
	data := pdfBytes(t, MaxDocumentVersionBytes)
	start := time.Now()
	v, err := upload(unicef, pdfMeta(doc.GetName(), data), data, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	up := time.Since(start)
	start = time.Now()
	_, file, _, err := download(ilo, doc.GetName(), v.GetVersion())
	if err != nil || !bytes.Equal(file, data) {
		t.Fatalf("downloaded %d bytes (%v), want the %d uploaded", len(file), err, len(data))
	}
	down := time.Since(start)
	chunks, _, err := x.store.DocumentStorage(context.Background(), doc.GetName())
	if err != nil || chunks != 50 {
		t.Fatalf("%d chunks, %v", chunks, err)
	}
	info, err := os.Stat(filepath.Join(x.dir, "exchange.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("database file after storing 50 MiB: %.1f MiB", float64(info.Size())/(1<<20))
	mib := float64(len(data)) / (1 << 20)
	t.Logf("50 MiB over mutual TLS on loopback: upload %v (%.0f MiB/s, 50 transactions of 1 MiB), download %v (%.0f MiB/s)",
		up.Round(time.Millisecond), mib/up.Seconds(), down.Round(time.Millisecond), mib/down.Seconds())
}

// TestDocumentDownloadersAreRecordedOnlyWhenTheOwnerAsks checks that a
// document created with record_downloaders keeps which agencies
// downloaded each version, each once, shown to the owner alone (readers
// see the flag, and the count), and that without it only counts are kept.
func TestDocumentDownloadersAreRecordedOnlyWhenTheOwnerAsks(t *testing.T) {
	_, _, ilo, iom, unicef, _, plain := documentParties(t)
	ctx := context.Background()
	resp, err := unicef.documents().CreateDocument(ctx, &exchangev1.CreateDocumentRequest{
		Parent: unicef.agencyName(), RequestId: nextRequestID(),
		Document: &exchangev1.Document{
			Title: "Fact sheet", Kind: exchangev1.DocumentKind_DOCUMENT_KIND_FACT_SHEET, RecordDownloaders: true,
			Audience: &exchangev1.Audience{WorkingGroups: []string{"workingGroups/un-wg"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	tracked := resp.GetDocument()
	data := pdfBytes(t, 3000)
	for _, doc := range []string{tracked.GetName(), plain.GetName()} {
		if _, err := upload(unicef, pdfMeta(doc, data), data, 1000); err != nil {
			t.Fatal(err)
		}
		for _, c := range []as{ilo, iom, iom} {
			if _, _, _, err := download(c, doc, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got, err := iom.documents().GetDocument(ctx, &exchangev1.GetDocumentRequest{Name: tracked.GetName()}); err != nil || !got.GetDocument().GetRecordDownloaders() {
		t.Fatalf("a reader does not see that downloads are recorded: %v %v", got, err)
	}
	versions := func(c as, doc string) *exchangev1.DocumentVersion {
		t.Helper()
		resp, err := c.documents().ListDocumentVersions(ctx, &exchangev1.ListDocumentVersionsRequest{Name: doc})
		if err != nil || len(resp.GetVersions()) != 1 {
			t.Fatalf("versions of %s as %s: %v %v", doc, c.agencyID, resp, err)
		}
		return resp.GetVersions()[0]
	}
	if v := versions(unicef, tracked.GetName()); v.GetDownloadCount() != 3 || strings.Join(v.GetDownloaders(), ",") != "agencies/ilo,agencies/iom" {
		t.Errorf("the owner sees %d downloads by %v, want 3 by ilo and iom", v.GetDownloadCount(), v.GetDownloaders())
	}
	for _, c := range []as{ilo, iom} {
		if v := versions(c, tracked.GetName()); v.GetDownloadCount() != 3 || len(v.GetDownloaders()) != 0 {
			t.Errorf("%s sees %d downloads by %v, want the count alone", c.agencyID, v.GetDownloadCount(), v.GetDownloaders())
		}
	}
	for _, c := range []as{ilo, iom} {
		got, _, _, err := download(c, tracked.GetName(), 0)
		if err != nil || len(got.GetDownloaders()) != 0 {
			t.Errorf("%s's download shows downloaders %v (%v)", c.agencyID, got.GetDownloaders(), err)
		}
	}
	if v := versions(unicef, plain.GetName()); v.GetDownloadCount() != 3 || len(v.GetDownloaders()) != 0 {
		t.Errorf("without record_downloaders the owner sees %d downloads by %v, want the count alone", v.GetDownloadCount(), v.GetDownloaders())
	}
}
