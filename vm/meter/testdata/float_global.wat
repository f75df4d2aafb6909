(module (global f64 (f64.const 1)))
