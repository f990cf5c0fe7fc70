//! Typed node ids, so a value can never be passed where an op is expected.
//!
//! Both wrap a petgraph `NodeIndex`; only this crate can make them.

use petgraph::stable_graph::NodeIndex;
use std::fmt;

macro_rules! entity {
    ($(#[$m:meta])* $name:ident, $prefix:literal) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub(crate) NodeIndex);

        impl $name {
            /// The raw node index in the graph.
            pub fn index(self) -> usize {
                self.0.index()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0.index())
            }
        }
    };
}

entity!(
    /// A value (tensor) node.
    ValueId,
    "v"
);
entity!(
    /// An operation node.
    OpId,
    "op"
);
