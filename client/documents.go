package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"iter"
	"path/filepath"
	"strings"

	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// AllDocumentOwners is the parent that lists the documents of every
// agency the caller may see.
const AllDocumentOwners = "agencies/-"

// DocumentChunkBytes is the size of the chunks Upload sends: 1 MiB, the
// most the exchange takes in one message of an upload.
const DocumentChunkBytes = 1 << 20

// MaxDocumentBytes is the most one document version may hold: 50 MiB.
const MaxDocumentBytes = 50 << 20

// DocumentClient shares working tools (manuals, guidelines, case studies,
// fact sheets) as versioned files: PDF, DOCX, PNG or JPEG of at most 50
// MiB each. A document is named under its owner
// ("agencies/unicef/documents/01jd…"); only the owner uploads versions.
// Everything else reads only the documents whose audience includes the
// caller: a document the caller may not see answers NOT_FOUND exactly as
// if it did not exist. Downloads are counted per version; which agencies
// downloaded is recorded only for a document created with
// RecordDownloaders, and shown to its owner alone.
type DocumentClient struct {
	rpc exchangev1.DocumentServiceClient
}

// Create creates the document d, without versions, under parent, the
// caller's own agency ("agencies/unicef"), and returns it as stored. The
// call carries a request id (random unless WithRequestID is given) and is
// retried on UNAVAILABLE, so it never creates twice. Agencies only.
func (c *DocumentClient) Create(ctx context.Context, parent string, d *exchangev1.Document, opts ...CreateOption) (*exchangev1.Document, error) {
	s, err := newCreateSettings("CreateDocument", false, opts)
	if err != nil {
		return nil, err
	}
	resp, err := c.rpc.CreateDocument(ctx, &exchangev1.CreateDocumentRequest{Parent: parent, Document: d, RequestId: s.requestID})
	if err != nil {
		return nil, err
	}
	return resp.GetDocument(), nil
}

// Get returns the document with the given name.
func (c *DocumentClient) Get(ctx context.Context, name string) (*exchangev1.Document, error) {
	resp, err := c.rpc.GetDocument(ctx, &exchangev1.GetDocumentRequest{Name: name})
	if err != nil {
		return nil, err
	}
	return resp.GetDocument(), nil
}

// Documents iterates over the documents the caller may see that match
// req's filters (owner as parent, niche, country, kind), by owner id and
// then oldest first. A nil req, or an empty parent, searches every
// agency's documents (AllDocumentOwners). req is not changed. On error the
// iterator yields the error once and stops.
func (c *DocumentClient) Documents(ctx context.Context, req *exchangev1.ListDocumentsRequest) iter.Seq2[*exchangev1.Document, error] {
	if req == nil {
		req = &exchangev1.ListDocumentsRequest{}
	}
	req = proto.CloneOf(req)
	if req.Parent == "" {
		req.Parent = AllDocumentOwners
	}
	return paginate(ctx, func(ctx context.Context, token string) ([]*exchangev1.Document, string, error) {
		req.PageToken = token
		resp, err := c.rpc.ListDocuments(ctx, req)
		return resp.GetDocuments(), resp.GetNextPageToken(), err
	})
}

// Versions returns the document's complete versions, oldest first, with
// their download counts.
func (c *DocumentClient) Versions(ctx context.Context, name string) ([]*exchangev1.DocumentVersion, error) {
	resp, err := c.rpc.ListDocumentVersions(ctx, &exchangev1.ListDocumentVersionsRequest{Name: name})
	if err != nil {
		return nil, err
	}
	return resp.GetVersions(), nil
}

// ContentTypeOf returns the content type its extension gives a file name
// (.pdf, .docx, .png, .jpg or .jpeg), and false for any other. The
// exchange checks the file's first bytes against it.
func ContentTypeOf(fileName string) (exchangev1.DocumentContentType, bool) {
	switch strings.ToLower(filepath.Ext(fileName)) {
	case ".pdf":
		return exchangev1.DocumentContentType_DOCUMENT_CONTENT_TYPE_PDF, true
	case ".docx":
		return exchangev1.DocumentContentType_DOCUMENT_CONTENT_TYPE_DOCX, true
	case ".png":
		return exchangev1.DocumentContentType_DOCUMENT_CONTENT_TYPE_PNG, true
	case ".jpg", ".jpeg":
		return exchangev1.DocumentContentType_DOCUMENT_CONTENT_TYPE_JPEG, true
	}
	return 0, false
}

// Upload sends file as the next version of the document, owned by the
// caller: it reads file once to compute its size and SHA-256, then from
// the start again to send it in chunks of DocumentChunkBytes. The exchange
// checks the type, size and checksum and makes the version visible only
// once all of it is in; a refused upload stores nothing. It is not
// retried: after an error, list the versions to see whether it took
// effect.
func (c *DocumentClient) Upload(ctx context.Context, document string, contentType exchangev1.DocumentContentType, fileName string, file io.ReadSeeker) (*exchangev1.DocumentVersion, error) {
	h := sha256.New()
	size, err := io.Copy(h, file)
	if err != nil {
		return nil, fmt.Errorf("client: upload %s: %w", fileName, err)
	}
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("client: upload %s: %w", fileName, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.rpc.UploadDocumentVersion(ctx)
	if err != nil {
		return nil, err
	}
	send := func(m *exchangev1.UploadDocumentVersionRequest) bool {
		// io.EOF means the exchange ended the call; CloseAndRecv says why.
		return stream.Send(m) == nil
	}
	ok := send(&exchangev1.UploadDocumentVersionRequest{Data: &exchangev1.UploadDocumentVersionRequest_Metadata{Metadata: &exchangev1.UploadDocumentVersionMetadata{
		Document: document, ContentType: contentType, FileName: filepath.Base(fileName), SizeBytes: size, Sha256: hex.EncodeToString(h.Sum(nil)),
	}}})
	buf := make([]byte, DocumentChunkBytes)
	for ok {
		n, err := io.ReadFull(file, buf)
		if n > 0 {
			ok = send(&exchangev1.UploadDocumentVersionRequest{Data: &exchangev1.UploadDocumentVersionRequest_Chunk{Chunk: buf[:n]}})
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("client: upload %s: %w", fileName, err)
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return nil, err
	}
	return resp.GetVersion(), nil
}

// Download writes a version of the document to w (version 0 for the
// latest) and returns the version's metadata. It checks the bytes written
// against the version's size and SHA-256 and fails if they differ. A
// download received in full is counted on the version.
func (c *DocumentClient) Download(ctx context.Context, name string, version int32, w io.Writer) (*exchangev1.DocumentVersion, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.rpc.DownloadDocumentVersion(ctx, &exchangev1.DownloadDocumentVersionRequest{Name: name, Version: version})
	if err != nil {
		return nil, err
	}
	var v *exchangev1.DocumentVersion
	h := sha256.New()
	var n int64
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if m.GetVersion() != nil {
			v = m.GetVersion()
			continue
		}
		h.Write(m.GetChunk())
		if _, err := w.Write(m.GetChunk()); err != nil {
			return nil, fmt.Errorf("client: download %s: %w", name, err)
		}
		n += int64(len(m.GetChunk()))
	}
	if v == nil {
		return nil, fmt.Errorf("client: download %s: the exchange sent no version", name)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); n != v.GetSizeBytes() || sum != v.GetSha256() {
		return nil, fmt.Errorf("client: download %s: received %d bytes with SHA-256 %s, want %d bytes with %s", v.GetName(), n, sum, v.GetSizeBytes(), v.GetSha256())
	}
	return v, nil
}

// The retry policies of DocumentService, added here rather than in the
// shared table so that services added side by side do not edit the same
// lines. The streams are not retried: the client's retry interceptor is
// unary only, and an upload or download that broke is started again by
// its caller.
func init() {
	for m, p := range map[string]RetryPolicy{
		exchangev1.DocumentService_CreateDocument_FullMethodName:          RetryWithRequestID,
		exchangev1.DocumentService_GetDocument_FullMethodName:             RetryAlways,
		exchangev1.DocumentService_ListDocuments_FullMethodName:           RetryAlways,
		exchangev1.DocumentService_ListDocumentVersions_FullMethodName:    RetryAlways,
		exchangev1.DocumentService_UploadDocumentVersion_FullMethodName:   NoRetry,
		exchangev1.DocumentService_DownloadDocumentVersion_FullMethodName: NoRetry,
	} {
		retryPolicies[m] = p
	}
}
