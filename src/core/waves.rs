//! Start waves from dependency lists (wave n holds the services whose
//! dependencies all sit in waves < n, in index order): what `rinit check`
//! prints, what the boot starts by and what the shutdown walks backwards,
//! recomputed by the core when a reload changes the graph. Linear in
//! services + dependencies.

/// The waves, and which services could not be placed (they sit on or
/// behind a cycle). Kahn's algorithm one layer at a time: a service joins
/// the wave after the one that held its last dependency.
pub fn waves(deps: &[Vec<usize>]) -> (Vec<Vec<usize>>, Vec<bool>) {
    let n = deps.len();
    // An index out of range (never made by validation) is no dependency.
    let mut missing: Vec<usize> = deps
        .iter()
        .map(|ds| ds.iter().filter(|&&d| d < n).count())
        .collect();
    let mut dependents = vec![Vec::new(); n];
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            if let Some(list) = dependents.get_mut(d) {
                list.push(i);
            }
        }
    }
    let mut placed = vec![false; n];
    let mut waves = Vec::new();
    let mut wave: Vec<usize> = (0..n).filter(|&i| missing[i] == 0).collect();
    while !wave.is_empty() {
        let mut next = Vec::new();
        for &i in &wave {
            placed[i] = true;
            for &j in &dependents[i] {
                missing[j] -= 1;
                if missing[j] == 0 {
                    next.push(j);
                }
            }
        }
        let next = crate::core::types::sorted_by_key(next, |&j| j);
        waves.push(std::mem::replace(&mut wave, next));
    }
    let stuck = placed.iter().map(|p| !p).collect();
    (waves, stuck)
}

#[cfg(test)]
mod tests {
    use super::waves;

    #[test]
    fn layers_by_last_dependency_and_flags_cycles() {
        let (w, stuck) = waves(&[vec![], vec![0], vec![0, 1], vec![]]);
        assert_eq!(w, vec![vec![0, 3], vec![1], vec![2]]);
        assert!(stuck.iter().all(|s| !s));
        let (w, stuck) = waves(&[vec![1], vec![0], vec![]]);
        assert_eq!(w, vec![vec![2]]);
        assert_eq!(stuck, vec![true, true, false]);
    }

    #[test]
    fn an_index_out_of_range_is_no_dependency() {
        let (w, _) = waves(&[vec![7], vec![0]]);
        assert_eq!(w, vec![vec![0], vec![1]]);
    }
}
