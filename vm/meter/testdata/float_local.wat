(module (func (local f32)))
