//! Server-Sent Events on the wire: event ids and frame encoding.
