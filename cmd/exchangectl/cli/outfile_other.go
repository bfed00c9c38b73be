//go:build !unix

package cli

// openNoCTTY is 0 where terminals cannot become controlling terminals by
// being opened.
const openNoCTTY = 0
