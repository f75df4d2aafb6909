package contracts_test

import (
	"fmt"

	"github.com/scraft/scraft/contracts"
)

func ExampleABI_EncodeArgs() {
	chat, err := contracts.Get("chat")
	if err != nil {
		panic(err)
	}
	in, err := chat.EncodeArgs("send", []byte(`{"text":"hi"}`))
	fmt.Printf("%x %v\n", in, err)

	_, err = chat.EncodeArgs("send", []byte(`{"txt":"hi"}`))
	fmt.Println(err)

	out, _ := chat.DecodeOutput("send", []byte{7, 0, 0, 0, 0, 0, 0, 0})
	fmt.Println(string(out))
	// Output:
	// 026869 <nil>
	// contracts: bad arguments: chat::send: unknown field "txt" (want {text: string})
	// 7
}
