//! Work spread over threads an item a thread at a time, for items large in memory: each item
//! is done whole by one thread, so that at most one item a thread is held at once (under
//! rayon's work stealing, a thread waiting on a parallel call inside an item may start
//! another item, and then another), and the parallel calls inside an item run on its thread,
//! so that the threads busy are no more than the cores.

use std::sync::Mutex;

/// `work` done on every item on up to `threads` threads, an item a thread at a time; the
/// results in the order of the items. Parallel calls inside `work` run on its thread alone.
pub fn one_item_a_thread<T, R>(
    items: Vec<T>,
    threads: usize,
    work: impl Fn(T) -> R + Sync,
) -> Vec<R>
where
    T: Send,
    R: Send,
{
    let workers = threads.min(items.len());
    if workers < 2 {
        return items.into_iter().map(work).collect();
    }
    let count = items.len();
    let queue = Mutex::new(items.into_iter().enumerate());
    let next = || {
        queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .next()
    };
    let done: Vec<Vec<(usize, R)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    // A pool of this thread alone: a parallel call inside `work` cannot hand
                    // part of it to a thread that is busy with another item.
                    let alone = rayon::ThreadPoolBuilder::new().num_threads(1).build();
                    let mut done = Vec::new();
                    while let Some((at, item)) = next() {
                        let result = match &alone {
                            Ok(pool) => pool.install(|| work(item)),
                            Err(_) => work(item),
                        };
                        done.push((at, result));
                    }
                    done
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let mut slots: Vec<Option<R>> = (0..count).map(|_| None).collect();
    for (at, result) in done.into_iter().flatten() {
        slots[at] = Some(result);
    }
    slots
        .into_iter()
        .map(|r| r.expect("every item is taken by a worker and done"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn results_come_in_the_order_of_the_items_whatever_the_threads() {
        let items: Vec<u64> = (0..100).collect();
        for threads in [1, 2, 3, 8, 200] {
            let squares = one_item_a_thread(items.clone(), threads, |i| {
                // Uneven work, so that the items finish out of order.
                std::thread::sleep(std::time::Duration::from_micros((i * 37) % 200));
                i * i
            });
            assert_eq!(squares, items.iter().map(|i| i * i).collect::<Vec<_>>());
        }
    }

    #[test]
    fn no_more_items_than_threads_are_in_work_at_once_even_with_parallel_calls_inside() {
        let (busy, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let items: Vec<usize> = (0..40).collect();
        one_item_a_thread(items, 2, |_| {
            let now = busy.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            // A parallel call inside the work, which under the global pool could let this
            // thread start another item while it waits.
            let sum: u64 = (0..10_000u64).into_par_iter().sum();
            std::thread::sleep(std::time::Duration::from_millis(1));
            busy.fetch_sub(1, Ordering::SeqCst);
            sum
        });
        assert!(most.load(Ordering::SeqCst) <= 2);
    }

    #[test]
    fn parallel_calls_inside_the_work_run_on_its_thread() {
        let pools = one_item_a_thread(vec![(); 4], 2, |()| rayon::current_num_threads());
        assert_eq!(pools, vec![1; 4]);
    }
}
