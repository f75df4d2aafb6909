(module (func (param i32) (result i32) (i32.trunc_sat_f32_s (f32.convert_i32_s (local.get 0)))))
