package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// MaxDocumentVersionBytes is the most one document version may hold: 50
// MiB. An upload declaring more is refused with RESOURCE_EXHAUSTED naming
// metadata.size_bytes, before anything is stored.
const MaxDocumentVersionBytes = 50 << 20

// documentUploadTimeout is how long an upload may hold its document's
// next version: after it, another upload of the document takes over and
// cleans the first one up.
const documentUploadTimeout = 15 * time.Minute

// documentService implements DocumentService.
type documentService struct {
	exchangev1.UnimplementedDocumentServiceServer
	server *Server
	store  *store.Store
}

// newDocumentService makes the service and first cleans up the uploads a
// stopped server abandoned (those older than the upload timeout), so that
// their chunks do not stay stored when nobody uploads to their documents
// again.
func newDocumentService(srv *Server, st *store.Store) *documentService {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := st.SweepDocumentUploads(ctx, store.Op{Actor: "exchange", Method: "SweepDocumentUploads"}, srv.now().Add(-documentUploadTimeout))
	if err != nil {
		srv.log.Error("cannot clean up abandoned document uploads", "error", err.Error())
	} else if n > 0 {
		srv.log.Info("cleaned up abandoned document uploads", "uploads", n)
	}
	return &documentService{server: srv, store: st}
}

// visibleDocument returns the document if the reader may see it, and
// NOT_FOUND, exactly as for one that does not exist, otherwise.
func (s *documentService) visibleDocument(ctx context.Context, r Reader, name string) (*exchangev1.Document, error) {
	d, err := s.store.GetDocument(ctx, name)
	if err != nil {
		if store.KindOf(err) == store.KindNotFound {
			return nil, notFound(name)
		}
		return nil, err
	}
	if !r.Sees(d.GetOwner(), d.GetAudience()) {
		return nil, notFound(name)
	}
	return d, nil
}

// CreateDocument creates a document owned by the caller.
func (s *documentService) CreateDocument(ctx context.Context, req *exchangev1.CreateDocumentRequest) (*exchangev1.CreateDocumentResponse, error) {
	agencyID, err := ownParent(ctx, req.GetParent())
	if err != nil {
		return nil, err
	}
	d := proto.Clone(req.GetDocument()).(*exchangev1.Document)
	d.Name, d.Owner, d.LatestVersion, d.Etag, d.CreateTime, d.UpdateTime = "", "", 0, "", nil, nil
	if a := d.GetAudience(); a != nil && !a.GetAllMembers() && len(a.GetAgencies()) == 0 && len(a.GetWorkingGroups()) == 0 {
		d.Audience = nil
	}
	for i, c := range d.GetCountries() {
		if err := checkCountry(fmt.Sprintf("document.countries[%d]", i), c); err != nil {
			return nil, err
		}
	}
	checker := newPlanChecker(s.store)
	for i, a := range d.GetAudience().GetAgencies() {
		if err := checker.known(ctx, fmt.Sprintf("document.audience.agencies[%d]", i), a); err != nil {
			return nil, err
		}
	}
	for i, g := range d.GetAudience().GetWorkingGroups() {
		if err := checker.known(ctx, fmt.Sprintf("document.audience.working_groups[%d]", i), g); err != nil {
			return nil, err
		}
	}
	created, err := s.store.CreateDocument(ctx, opFor(ctx, req.GetRequestId()), agencyID, d)
	if err != nil {
		return nil, err
	}
	return &exchangev1.CreateDocumentResponse{Document: created}, nil
}

// GetDocument returns a document the caller may see.
func (s *documentService) GetDocument(ctx context.Context, req *exchangev1.GetDocumentRequest) (*exchangev1.GetDocumentResponse, error) {
	r, err := readerFor(ctx, s.store)
	if err != nil {
		return nil, err
	}
	d, err := s.visibleDocument(ctx, r, req.GetName())
	if err != nil {
		return nil, err
	}
	return &exchangev1.GetDocumentResponse{Document: d}, nil
}

// ListDocuments lists the documents the caller may see, filtered.
func (s *documentService) ListDocuments(ctx context.Context, req *exchangev1.ListDocumentsRequest) (*exchangev1.ListDocumentsResponse, error) {
	r, err := readerFor(ctx, s.store)
	if err != nil {
		return nil, err
	}
	agencyID := strings.TrimPrefix(req.GetParent(), store.AgencyPrefix)
	if agencyID == "-" {
		agencyID = ""
	}
	keep := func(d *exchangev1.Document) bool {
		return r.Sees(d.GetOwner(), d.GetAudience()) &&
			(req.GetNiche() == 0 || slices.Contains(d.GetNiches(), req.GetNiche())) &&
			(req.GetCountry() == "" || slices.Contains(d.GetCountries(), req.GetCountry())) &&
			(req.GetKind() == 0 || d.GetKind() == req.GetKind())
	}
	items, next, err := s.store.ListDocuments(ctx, store.DocumentFilter{
		AgencyID: agencyID, Keep: keep, Fingerprint: fmt.Sprint(req.GetNiche(), req.GetCountry(), req.GetKind()),
	}, store.Page{Size: req.GetPageSize(), Token: req.GetPageToken()})
	if err != nil {
		return nil, err
	}
	return &exchangev1.ListDocumentsResponse{Documents: items, NextPageToken: next}, nil
}

// ListDocumentVersions lists the complete versions of a document the
// caller may see.
func (s *documentService) ListDocumentVersions(ctx context.Context, req *exchangev1.ListDocumentVersionsRequest) (*exchangev1.ListDocumentVersionsResponse, error) {
	r, err := readerFor(ctx, s.store)
	if err != nil {
		return nil, err
	}
	d, err := s.visibleDocument(ctx, r, req.GetName())
	if err != nil {
		return nil, err
	}
	vs, err := s.store.ListDocumentVersions(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	for i, v := range vs {
		vs[i] = forReader(r, d, v)
	}
	return &exchangev1.ListDocumentVersionsResponse{Versions: vs}, nil
}

// forReader returns the version as the reader may see it: the
// downloaders are the owner's alone.
func forReader(r Reader, d *exchangev1.Document, v *exchangev1.DocumentVersion) *exchangev1.DocumentVersion {
	if len(v.GetDownloaders()) == 0 || d.GetOwner() == r.Caller.AgencyName() {
		return v
	}
	v = proto.Clone(v).(*exchangev1.DocumentVersion)
	v.Downloaders = nil
	return v
}

// magic is the first bytes each content type's files start with.
var magic = map[exchangev1.DocumentContentType][]byte{
	exchangev1.DocumentContentType_DOCUMENT_CONTENT_TYPE_PDF:  []byte("%PDF-"),
	exchangev1.DocumentContentType_DOCUMENT_CONTENT_TYPE_DOCX: []byte("PK\x03\x04"),
	exchangev1.DocumentContentType_DOCUMENT_CONTENT_TYPE_PNG:  []byte("\x89PNG\r\n\x1a\n"),
	exchangev1.DocumentContentType_DOCUMENT_CONTENT_TYPE_JPEG: []byte("\xff\xd8\xff"),
}

// checkContent checks the first bytes of a file against its declared type.
func checkContent(declared exchangev1.DocumentContentType, head []byte) error {
	if bytes.HasPrefix(head, magic[declared]) {
		return nil
	}
	for t, m := range magic {
		if bytes.HasPrefix(head, m) {
			return invalidField("metadata.content_type", fmt.Sprintf("the file is %s, not the %s declared; nothing was stored", t, declared))
		}
	}
	return invalidField("metadata.content_type", fmt.Sprintf("the file does not start as a %s does (nor as any type the exchange takes: PDF, DOCX, PNG, JPEG); nothing was stored", declared))
}

// tooLarge refuses an upload over the size limit.
func tooLarge(size int64) error {
	return detailed(codes.ResourceExhausted,
		fmt.Sprintf("metadata.size_bytes: %d bytes exceed the limit of %d bytes (50 MiB) per document version; nothing was stored", size, MaxDocumentVersionBytes),
		"DOCUMENT_TOO_LARGE", "", "metadata.size_bytes", fmt.Sprintf("at most %d bytes (50 MiB)", MaxDocumentVersionBytes))
}

// UploadDocumentVersion receives a version's metadata and file, stores the
// file in chunks and makes the version visible once the whole file is in
// and matches its declared size and checksum. A refused or broken upload
// leaves nothing stored.
func (s *documentService) UploadDocumentVersion(stream exchangev1.DocumentService_UploadDocumentVersionServer) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if errors.Is(err, io.EOF) {
		return invalidField("metadata", "required: the first message of an upload carries its metadata")
	}
	if err != nil {
		return err
	}
	meta := first.GetMetadata()
	if meta == nil {
		return invalidField("metadata", "required: the first message of an upload carries its metadata, the chunks follow")
	}
	r, err := readerFor(ctx, s.store)
	if err != nil {
		return err
	}
	d, err := s.visibleDocument(ctx, r, meta.GetDocument())
	if err != nil {
		return err
	}
	if d.GetOwner() != r.Caller.AgencyName() {
		return permissionDenied(fmt.Sprintf("only %s, the owner, may upload versions of %s", d.GetOwner(), d.GetName()))
	}
	if meta.GetSizeBytes() > MaxDocumentVersionBytes {
		return tooLarge(meta.GetSizeBytes())
	}
	name := d.GetName()
	op := opFor(ctx, "")
	version, err := s.store.BeginDocumentUpload(ctx, op, name, s.server.now().Add(-documentUploadTimeout))
	if err != nil {
		return err
	}
	completed := false
	defer func() {
		if !completed {
			// The call's context may be over; the cleanup must still run.
			cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if err := s.store.AbortDocumentUpload(cleanup, op, name, version); err != nil {
				s.server.log.ErrorContext(ctx, "cannot clean up a failed document upload", "document", name, "version", version, "error", err.Error())
			}
		}
	}()
	var (
		sum      = sha256.New()
		received int64
		buf      = make([]byte, 0, store.DocumentChunkBytes)
		chunks   uint32
		checked  bool
	)
	flush := func() error {
		if !checked {
			if err := checkContent(meta.GetContentType(), buf); err != nil {
				return err
			}
			checked = true
		}
		if len(buf) == 0 {
			return nil
		}
		if err := s.store.PutDocumentChunk(ctx, op, name, version, chunks, buf); err != nil {
			return err
		}
		chunks++
		buf = buf[:0]
		return nil
	}
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		chunk := msg.GetChunk()
		if msg.GetMetadata() != nil {
			return invalidField("metadata", "only the first message of an upload carries metadata")
		}
		received += int64(len(chunk))
		if received > meta.GetSizeBytes() {
			return invalidField("metadata.size_bytes", fmt.Sprintf("the file is longer than the %d bytes declared; nothing was stored", meta.GetSizeBytes()))
		}
		sum.Write(chunk)
		for len(chunk) > 0 {
			n := min(len(chunk), store.DocumentChunkBytes-len(buf))
			buf = append(buf, chunk[:n]...)
			chunk = chunk[n:]
			if len(buf) == store.DocumentChunkBytes {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	if received != meta.GetSizeBytes() {
		return invalidField("metadata.size_bytes", fmt.Sprintf("the file has %d bytes, not the %d declared; nothing was stored", received, meta.GetSizeBytes()))
	}
	if err := flush(); err != nil {
		return err
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != meta.GetSha256() {
		return invalidField("metadata.sha256", fmt.Sprintf("the file received has SHA-256 %s, not the %s declared; nothing was stored", got, meta.GetSha256()))
	}
	v, err := s.store.CompleteDocumentUpload(ctx, op, name, &exchangev1.DocumentVersion{
		Version: version, ContentType: meta.GetContentType(), FileName: meta.GetFileName(),
		SizeBytes: received, Sha256: meta.GetSha256(),
	})
	if err != nil {
		return err
	}
	completed = true
	return stream.SendAndClose(&exchangev1.UploadDocumentVersionResponse{Version: v})
}

// DownloadDocumentVersion sends a version's metadata, then its file in
// chunks, and counts the download once the whole file is sent.
func (s *documentService) DownloadDocumentVersion(req *exchangev1.DownloadDocumentVersionRequest, stream exchangev1.DocumentService_DownloadDocumentVersionServer) error {
	ctx := stream.Context()
	r, err := readerFor(ctx, s.store)
	if err != nil {
		return err
	}
	d, err := s.visibleDocument(ctx, r, req.GetName())
	if err != nil {
		return err
	}
	if req.GetVersion() == 0 && d.GetLatestVersion() == 0 {
		return &store.Error{Kind: store.KindNotFound, Resource: d.GetName(), Message: d.GetName() + " has no version yet"}
	}
	v, err := s.store.GetDocumentVersion(ctx, d.GetName(), req.GetVersion())
	if err != nil {
		return err
	}
	v = forReader(r, d, v)
	if err := stream.Send(&exchangev1.DownloadDocumentVersionResponse{Data: &exchangev1.DownloadDocumentVersionResponse_Version{Version: v}}); err != nil {
		return err
	}
	var sent int64
	for i := uint32(0); sent < v.GetSizeBytes(); i++ {
		b, err := s.store.ReadDocumentChunk(ctx, d.GetName(), v.GetVersion(), i)
		if err != nil {
			return err
		}
		if err := stream.Send(&exchangev1.DownloadDocumentVersionResponse{Data: &exchangev1.DownloadDocumentVersionResponse_Chunk{Chunk: b}}); err != nil {
			return err
		}
		sent += int64(len(b))
	}
	if sent != v.GetSizeBytes() {
		return &store.Error{Kind: store.KindInternal, Message: fmt.Sprintf("%s: stored chunks hold %d bytes, not %d", v.GetName(), sent, v.GetSizeBytes())}
	}
	// The count is the exchange's change, not the reader's: the audit
	// chain and the change log record no downloader. The version records
	// the downloading agency only when the owner asked, which every
	// reader sees on the document before downloading.
	op := opFor(ctx, "")
	op.Actor, op.ActorCertificate = "exchange", ""
	downloader := ""
	if d.GetRecordDownloaders() {
		downloader = r.Caller.AgencyName()
	}
	_, err = s.store.CountDocumentDownload(ctx, op, d.GetName(), v.GetVersion(), downloader)
	return err
}
