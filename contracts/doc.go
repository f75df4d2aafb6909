// Package contracts embeds the compiled demo contracts (chat, editor,
// movecraft) and describes their entry functions.
package contracts
