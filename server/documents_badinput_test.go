package server

import (
	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// The base requests of DocumentService for TestMalformedRequests, kept
// here rather than in the shared table so that services added side by side
// do not edit the same lines.
func init() {
	doc := "agencies/ilo/documents/" + badID
	bases := map[string]func() proto.Message{
		exchangev1.DocumentService_CreateDocument_FullMethodName: func() proto.Message {
			return &exchangev1.CreateDocumentRequest{Parent: "agencies/ilo", RequestId: "doc-1", Document: &exchangev1.Document{
				Name: doc, Title: "Manual", Description: "How to", Kind: exchangev1.DocumentKind_DOCUMENT_KIND_MANUAL,
				Niches: []exchangev1.Niche{exchangev1.Niche_NICHE_PREVENTION}, Countries: []string{"KH"}, Audience: baseAudience(),
			}}
		},
		exchangev1.DocumentService_GetDocument_FullMethodName: func() proto.Message {
			return &exchangev1.GetDocumentRequest{Name: doc}
		},
		exchangev1.DocumentService_ListDocuments_FullMethodName: func() proto.Message {
			return &exchangev1.ListDocumentsRequest{Parent: "agencies/ilo", PageSize: 10, Niche: exchangev1.Niche_NICHE_PREVENTION,
				Country: "KH", Kind: exchangev1.DocumentKind_DOCUMENT_KIND_MANUAL}
		},
		exchangev1.DocumentService_UploadDocumentVersion_FullMethodName: func() proto.Message {
			return &exchangev1.UploadDocumentVersionRequest{Data: &exchangev1.UploadDocumentVersionRequest_Metadata{Metadata: &exchangev1.UploadDocumentVersionMetadata{
				Document: doc, ContentType: exchangev1.DocumentContentType_DOCUMENT_CONTENT_TYPE_PDF, FileName: "manual.pdf",
				SizeBytes: 1000, Sha256: "0000000000000000000000000000000000000000000000000000000000000000",
			}}}
		},
		exchangev1.DocumentService_ListDocumentVersions_FullMethodName: func() proto.Message {
			return &exchangev1.ListDocumentVersionsRequest{Name: doc}
		},
		exchangev1.DocumentService_DownloadDocumentVersion_FullMethodName: func() proto.Message {
			return &exchangev1.DownloadDocumentVersionRequest{Name: doc, Version: 1}
		},
	}
	for m, base := range bases {
		badInputBases[m] = base
	}
}
