package store

import (
	"bytes"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

func documentMsg(title string) *exchangev1.Document {
	return &exchangev1.Document{
		Title: title, Kind: exchangev1.DocumentKind_DOCUMENT_KIND_MANUAL,
		Niches: []exchangev1.Niche{exchangev1.Niche_NICHE_PREVENTION}, Countries: []string{"KH"},
	}
}

func docOp(id, method string) Op {
	return Op{Actor: AgencyPrefix + id, Method: "/alltogether.exchange.v1.DocumentService/" + method}
}

// uploadChunks stores data as the document's next version, one chunk per
// transaction, and completes it.
func uploadChunks(t *testing.T, s *Store, name string, data []byte) *exchangev1.DocumentVersion {
	t.Helper()
	ctx := t.Context()
	version, err := s.BeginDocumentUpload(ctx, docOp("ilo", "UploadDocumentVersion"), name, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i*DocumentChunkBytes < len(data); i++ {
		chunk := data[i*DocumentChunkBytes : min(len(data), (i+1)*DocumentChunkBytes)]
		if err := s.PutDocumentChunk(ctx, docOp("ilo", "UploadDocumentVersion"), name, version, uint32(i), chunk); err != nil {
			t.Fatal(err)
		}
	}
	v, err := s.CompleteDocumentUpload(ctx, docOp("ilo", "UploadDocumentVersion"), name, &exchangev1.DocumentVersion{
		Version: version, ContentType: exchangev1.DocumentContentType_DOCUMENT_CONTENT_TYPE_PDF, FileName: "a.pdf", SizeBytes: int64(len(data)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func readAll(t *testing.T, s *Store, name string, v *exchangev1.DocumentVersion) []byte {
	t.Helper()
	var out []byte
	for i := uint32(0); int64(len(out)) < v.GetSizeBytes(); i++ {
		b, err := s.ReadDocumentChunk(t.Context(), name, v.GetVersion(), i)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b...)
	}
	return out
}

// TestDocumentVersionBecomesVisibleOnlyWhenComplete uploads a version in
// several transactions and checks that, until the last, the document shows
// no version and no chunk can be read; then that a second version keeps
// the first, and downloads are counted.
func TestDocumentVersionBecomesVisibleOnlyWhenComplete(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	d, err := s.CreateDocument(ctx, docOp("ilo", "CreateDocument"), "ilo", documentMsg("Manual"))
	if err != nil {
		t.Fatal(err)
	}
	if d.GetOwner() != "agencies/ilo" || d.GetLatestVersion() != 0 {
		t.Fatalf("created %v", d)
	}
	name := d.GetName()
	data := bytes.Repeat([]byte("%PDF-1.7 0123456789"), 3*DocumentChunkBytes/19+5) // 3 full chunks and a part
	version, err := s.BeginDocumentUpload(ctx, docOp("ilo", "UploadDocumentVersion"), name, time.Time{})
	if err != nil || version != 1 {
		t.Fatalf("begin: %d %v", version, err)
	}
	if err := s.PutDocumentChunk(ctx, docOp("ilo", "UploadDocumentVersion"), name, 1, 0, data[:DocumentChunkBytes]); err != nil {
		t.Fatal(err)
	}
	// Half-way: nothing visible.
	if _, err := s.GetDocumentVersion(ctx, name, 1); err == nil {
		t.Fatal("a half-uploaded version is visible")
	}
	if _, err := s.ReadDocumentChunk(ctx, name, 1, 0); err == nil {
		t.Fatal("a half-uploaded version's chunk can be read")
	}
	if vs, err := s.ListDocumentVersions(ctx, name); err != nil || len(vs) != 0 {
		t.Fatalf("versions half-way: %v %v", vs, err)
	}
	// A second upload meanwhile is refused, naming the one in progress.
	_, err = s.BeginDocumentUpload(ctx, docOp("ilo", "UploadDocumentVersion"), name, time.Time{})
	if e := wantKind(t, err, KindFailedPrecondition); !strings.Contains(e.Message, "version 1 is being uploaded") {
		t.Errorf("message %q does not name the upload in progress", e.Message)
	}
	if err := s.AbortDocumentUpload(ctx, docOp("ilo", "UploadDocumentVersion"), name, 1); err != nil {
		t.Fatal(err)
	}
	if chunks, uploads, err := s.DocumentStorage(ctx, name); err != nil || chunks != 0 || uploads != 0 {
		t.Fatalf("after abort: %d chunks, %d uploads, %v", chunks, uploads, err)
	}

	v1 := uploadChunks(t, s, name, data)
	if v1.GetVersion() != 1 || v1.GetName() != name+"/versions/1" {
		t.Fatalf("v1 %v", v1)
	}
	if got := readAll(t, s, name, v1); !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, want %d equal", len(got), len(data))
	}
	v2 := uploadChunks(t, s, name, []byte("%PDF-2"))
	if v2.GetVersion() != 2 {
		t.Fatalf("v2 %v", v2)
	}
	if d, _ := s.GetDocument(ctx, name); d.GetLatestVersion() != 2 {
		t.Fatalf("latest %d", d.GetLatestVersion())
	}
	if got := readAll(t, s, name, v1); !bytes.Equal(got, data) {
		t.Fatal("version 1 changed when version 2 was uploaded")
	}
	for range 3 {
		if _, err := s.CountDocumentDownload(ctx, docOp("iom", "DownloadDocumentVersion"), name, 1, "agencies/iom"); err != nil {
			t.Fatal(err)
		}
	}
	vs, err := s.ListDocumentVersions(ctx, name)
	if err != nil || len(vs) != 2 || vs[0].GetDownloadCount() != 3 || vs[1].GetDownloadCount() != 0 ||
		!slices.Equal(vs[0].GetDownloaders(), []string{"agencies/iom"}) || len(vs[1].GetDownloaders()) != 0 {
		t.Fatalf("versions %v %v", vs, err)
	}
}

// TestAbandonedDocumentUploadIsCleanedUp leaves an upload half-way, as a
// server that stopped would, and checks that the sweep and the next upload
// remove its chunks and reservation and reuse its version number.
func TestAbandonedDocumentUploadIsCleanedUp(t *testing.T) {
	s, clk := openTest(t)
	ctx := t.Context()
	d, err := s.CreateDocument(ctx, docOp("ilo", "CreateDocument"), "ilo", documentMsg("Guide"))
	if err != nil {
		t.Fatal(err)
	}
	name := d.GetName()
	begin := func() int32 {
		v, err := s.BeginDocumentUpload(ctx, docOp("ilo", "UploadDocumentVersion"), name, clk.now().Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	v := begin()
	for i := range chunksPerCleanup + 3 { // more than one cleanup transaction holds
		if err := s.PutDocumentChunk(ctx, docOp("ilo", "UploadDocumentVersion"), name, v, uint32(i), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.SweepDocumentUploads(ctx, docOp("ilo", "sweep"), clk.now().Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("a recent upload was swept: %d %v", n, err)
	}
	clk.advance(2 * time.Hour)
	if n, err := s.SweepDocumentUploads(ctx, docOp("ilo", "sweep"), clk.now().Add(-time.Hour)); err != nil || n != 1 {
		t.Fatalf("sweep: %d %v", n, err)
	}
	if chunks, uploads, err := s.DocumentStorage(ctx, name); err != nil || chunks != 0 || uploads != 0 {
		t.Fatalf("after sweep: %d chunks, %d uploads, %v", chunks, uploads, err)
	}
	// The abandoned upload's writer is told, and writes nothing.
	err = s.PutDocumentChunk(ctx, docOp("ilo", "UploadDocumentVersion"), name, v, 99, []byte("x"))
	wantKind(t, err, KindFailedPrecondition)

	// An abandoned upload without a sweep: the next upload cleans it up.
	v = begin()
	if err := s.PutDocumentChunk(ctx, docOp("ilo", "UploadDocumentVersion"), name, v, 0, []byte("x")); err != nil {
		t.Fatal(err)
	}
	clk.advance(2 * time.Hour)
	if again := begin(); again != v {
		t.Fatalf("version %d after an abandoned %d", again, v)
	}
	if chunks, uploads, err := s.DocumentStorage(ctx, name); err != nil || chunks != 0 || uploads != 1 {
		t.Fatalf("after restart: %d chunks, %d uploads, %v", chunks, uploads, err)
	}
}

// TestFailedDocumentUploadIsCleanedUpWhenTheFileIsFull fills a size-limited
// store with an upload's chunks until a chunk is refused, and checks that
// the upload can still be aborted: its cleanup uses the quota's reserve,
// as erasures do, since it frees more than it writes.
func TestFailedDocumentUploadIsCleanedUpWhenTheFileIsFull(t *testing.T) {
	needsFile(t, "the size limit of the file")
	const limit = 4 << 20
	s := openAt(t, filepath.Join(t.TempDir(), "exchange.db"), Options{MaxSize: limit})
	ctx := t.Context()
	d, err := s.CreateDocument(ctx, docOp("ilo", "CreateDocument"), "ilo", documentMsg("Big"))
	if err != nil {
		t.Fatal(err)
	}
	name := d.GetName()
	op := docOp("ilo", "UploadDocumentVersion")
	version, err := s.BeginDocumentUpload(ctx, op, name, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte{7}, DocumentChunkBytes/4)
	var refused error
	stored := 0
	for i := range 64 {
		if refused = s.PutDocumentChunk(ctx, op, name, version, uint32(i), chunk); refused != nil {
			break
		}
		stored++
	}
	wantKind(t, refused, KindResourceExhausted)
	if err := s.AbortDocumentUpload(ctx, op, name, version); err != nil {
		t.Fatalf("abort after %d chunks filled the file: %v", stored, err)
	}
	if chunks, uploads, err := s.DocumentStorage(ctx, name); err != nil || chunks != 0 || uploads != 0 {
		t.Fatalf("after abort: %d chunks, %d uploads, %v", chunks, uploads, err)
	}
	t.Logf("%d chunks of %d KiB fitted in a %d MiB file before the quota refused one", stored, len(chunk)>>10, limit>>20)
}
