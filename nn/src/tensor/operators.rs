//! `+ - * /` and unary `-` on tensors and Rust scalars, on owned and borrowed handles.
//! Each operator calls the named method (`add`, `sub`…), so the semantics, promotion
//! and error reporting are the method's; `#[track_caller]` keeps the user's location.

use super::Tensor;
use crate::args::Arg;
use onde_ir::{BinaryOp, SourceLoc};
use std::ops::{Add, Div, Mul, Neg, Sub};

macro_rules! tensor_op {
    ($Tr:ident, $m:ident, $api:literal, $op:expr) => {
        impl<R: Into<Arg>> $Tr<R> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $m(self, rhs: R) -> Tensor {
                self.binary_at($api, $op, rhs.into(), SourceLoc::caller())
            }
        }
        impl<R: Into<Arg>> $Tr<R> for Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $m(self, rhs: R) -> Tensor {
                self.binary_at($api, $op, rhs.into(), SourceLoc::caller())
            }
        }
        tensor_op!(@scalar $Tr, $m, $api, $op, f64, f32, i64, i32);
    };
    (@scalar $Tr:ident, $m:ident, $api:literal, $op:expr, $($s:ty),*) => {$(
        impl $Tr<&Tensor> for $s {
            type Output = Tensor;
            #[track_caller]
            fn $m(self, rhs: &Tensor) -> Tensor {
                let loc = SourceLoc::caller();
                rhs.arg_tensor(Arg::from(self), &loc)
                    .binary_at($api, $op, Arg::Tensor(rhs.clone()), loc)
            }
        }
        impl $Tr<Tensor> for $s {
            type Output = Tensor;
            #[track_caller]
            fn $m(self, rhs: Tensor) -> Tensor {
                let loc = SourceLoc::caller();
                rhs.arg_tensor(Arg::from(self), &loc)
                    .binary_at($api, $op, Arg::Tensor(rhs), loc)
            }
        }
    )*};
}

tensor_op!(Add, add, "add", BinaryOp::Add);
tensor_op!(Sub, sub, "sub", BinaryOp::Sub);
tensor_op!(Mul, mul, "mul", BinaryOp::Mul);
tensor_op!(Div, div, "div", BinaryOp::Div);

impl Neg for &Tensor {
    type Output = Tensor;
    #[track_caller]
    fn neg(self) -> Tensor {
        self.unary_at("neg", onde_ir::UnaryOp::Neg, SourceLoc::caller())
    }
}

impl Neg for Tensor {
    type Output = Tensor;
    #[track_caller]
    fn neg(self) -> Tensor {
        self.unary_at("neg", onde_ir::UnaryOp::Neg, SourceLoc::caller())
    }
}
