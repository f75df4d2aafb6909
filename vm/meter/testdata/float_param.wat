(module (func (param f64)))
