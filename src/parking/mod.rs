//! Parking mode: what blackbox does while the car is parked (issue 15,
//! part 2; being built). [`motion`] is the motion detector a parked camera
//! runs on each frame's luma.

pub mod motion;
