//go:build cgo && !linux

package onnx

// trimHeap does nothing where there is no glibc.
func trimHeap() {}
