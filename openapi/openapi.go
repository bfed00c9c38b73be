// Package openapi holds the OpenAPI (Swagger 2.0) document of the
// exchange's JSON/HTTP face, generated from the .proto files by
// protoc-gen-openapiv2 (make generate), for the server to publish at
// /openapi.json.
package openapi

import _ "embed"

// Document is exchange.swagger.json.
//
//go:embed exchange.swagger.json
var Document []byte
