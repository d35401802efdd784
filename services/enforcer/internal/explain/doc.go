// Package explain implements the enforcer's two offline commands, for the
// data engineers who write the policy and the people who must answer "why
// did this event (not) reach that stream?":
//
//   - enforcer check: Check validates a policy file as the enforcer loads it
//     and against the schema catalog (unknown schema names, field rules
//     that match no field, encrypt rules on fields whose type cannot hold
//     a ciphertext, signals rules that cannot take effect), reporting
//     problems as file:line:col.
//   - enforcer explain: Explain takes one event (plain JSON, converted to
//     goavro's native form by ToNative), one subject's consent state
//     (ParseConsent) and the policy, and says for every stream what the
//     enforcer does and why. The consent may also come from consent
//     signals (SignalFlags, EvaluateSignals): they are decoded and
//     evaluated by package signals, as consent-sync does, and their
//     changes applied on top of the consent state given.
//
// Explain does not re-implement the enforcer: it encodes the event, decodes
// it with avrocodec into the reader schema, and runs decision.Decide and a
// redact.Redactor with the inputs package enforce gives them, so an
// explanation is what the enforcer would have audited. A test runs
// enforce.Enforcer.Process on the same inputs and compares. Fields that the
// policy encrypts are encrypted under Input.Keys, or else under a
// throwaway key drawn for the explanation, which the output calls
// illustrative: its ciphertexts show where and in which form fields are
// encrypted, and decrypt with nothing.
//
// Nothing here touches Kafka or Redis, and errors never quote field values;
// only --show-values prints event data, on purpose.
package explain
