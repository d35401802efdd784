package avrocodec

import "context"

// UsesProgram reports whether the codec reads envelopes of writer data read
// as reader with a compiled program (not with the full decoder), so that
// tests know which path they check.
func UsesProgram(c *Codec, writer, reader *Schema) bool {
	return !c.program(writer, reader).slow
}

// WriterByID returns the writer schema of a Confluent schema id.
func (c *Codec) WriterByID(ctx context.Context, id int) (*Schema, error) {
	return c.writerByID(ctx, id)
}
