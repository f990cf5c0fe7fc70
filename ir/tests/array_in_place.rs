//! In-place updates of arrays: `fill` and `copy_from` keep the storage and check types.

use onde_ir::{Array, DType};

#[test]
fn fill_and_copy_from_keep_the_storage() {
    let mut a = Array::f32([2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
    let p = a.as_f32().unwrap().as_ptr();
    a.fill(0.5);
    assert_eq!(a.as_f32().unwrap(), &[0.5; 4]);
    let b = Array::f32([2, 2], vec![9.0, 8.0, 7.0, 6.0]).unwrap();
    assert!(a.copy_from(&b));
    assert_eq!(a, b);
    assert_eq!(a.as_f32().unwrap().as_ptr(), p, "same storage");
    // Another shape or dtype: refused, nothing changed.
    assert!(!a.copy_from(&Array::f32([4], vec![0.0; 4]).unwrap()));
    assert!(!a.copy_from(&Array::f64([2, 2], vec![0.0; 4]).unwrap()));
    assert_eq!(a, b);
    let mut m = Array::full(DType::Bool, [3], 0.0);
    m.fill(2.0);
    assert_eq!(m.as_bool().unwrap(), &[true; 3]);
    let mut i = Array::scalar_i64(5);
    i.fill(-3.7);
    assert_eq!(i.as_i64().unwrap(), &[-3]);
}
